#!/usr/bin/env python3
"""mkbrief.py N HARDSTOP "theme" ["extra"]: write the four writer briefs of round N to
$BRIEFS (default /work/notes)/R{N}{a..d}.md. Create the worktrees first:
    git worktree add -q /work/wt/rN{w} -b rN{w} main"""
import os, sys
GROUPS = {'a': 'ar hi es ru', 'b': 'en ur tl de', 'c': 'bn fa id pt ta', 'd': 'ne ml tr fr'}
n, stop, theme = sys.argv[1], sys.argv[2], sys.argv[3]
extra = sys.argv[4] if len(sys.argv) > 4 else ''
out = os.environ.get('BRIEFS', '/work/notes')
os.makedirs(out, exist_ok=True)
for w, langs in GROUPS.items():
    wt = '/work/wt/r%s%s' % (n, w)
    body = f"""# Round {n}, writer {w}

First read `{wt}/internal/model/testdata/tools/preamble.md` and follow it exactly.

- Worktree: `{wt}` (branch `r{n}{w}`); work only there (`cd {wt}`).
- Languages: {', '.join(langs.split())}: for each, 130 inbound replies and 70 outbound messages.
- Theme of the week: {theme}. A few businesses of this kind per language, each as that community
  would run it; the replies are what their customers write back, the outbound messages what the
  businesses send.
- HARD STOP: {stop} UTC (check with `date`). Stop then, commit what passes the check, and report.
"""
    if extra:
        body += '\n' + extra + '\n'
    open(os.path.join(out, 'R%s%s.md' % (n, w)), 'w').write(body)
    print(os.path.join(out, 'R%s%s.md' % (n, w)))
