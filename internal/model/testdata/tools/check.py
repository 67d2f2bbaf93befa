#!/usr/bin/env python3
"""check.py WORKTREE LANG...: check a writer's new corpus lines before commit.

New lines are those added since the merge-base with main (env BASE overrides the base revision).
Checks, per language: 130 new inbound and 70 new outbound lines; labels and language codes valid
for the file; no line starting with a code and ":" or "|"; at most 2 one-word opt-outs; no text
repeated (casefolded) within the new lines or against the whole corpus at the base."""
import os, subprocess, sys, collections
from sgcorpus import LANGS, TD

INB = {'opt_out', 'opt_in', 'none'}
OUT = {'transactional', 'promotional', 'cold_outreach', 'political', 'scam'}
CODES = {'ar': {'ar', 'ar-gulf', 'ar-eg', 'ar-lev', 'ar-latn'}, 'hi': {'hi', 'hi-latn'}, 'ur': {'ur', 'ur-latn'}, 'id': {'id', 'ms'}}

def git(wt, *a):
    return subprocess.run(['git', '-C', wt] + list(a), capture_output=True, text=True, check=True).stdout

def main():
    wt, langs = sys.argv[1], sys.argv[2:]
    base = os.environ.get('BASE') or git(wt, 'merge-base', 'HEAD', 'main').strip()
    seen = set()
    for d in ('inbound', 'outbound'):
        for l in LANGS:
            try:
                txt = git(wt, 'show', '%s:%s/%s/%s.tsv' % (base, TD, d, l))
            except subprocess.CalledProcessError:
                continue
            for ln in txt.splitlines():
                p = ln.split('\t', 2)
                if len(p) == 3:
                    seen.add(p[2].strip().casefold())
    bad = 0
    for l in langs:
        for d, labels, want in (('inbound', INB, 130), ('outbound', OUT, 70)):
            path = os.path.join(wt, TD, d, l + '.tsv')
            old = git(wt, 'show', '%s:%s/%s/%s.tsv' % (base, TD, d, l)).splitlines()
            cur = open(path, encoding='utf-8').read().splitlines()
            if cur[:len(old)] != old:
                print('%s/%s: lines before the new ones were changed; only append' % (d, l)); bad += 1
            new = cur[len(old):]
            cnt = collections.Counter(); words1 = 0; mine = set()
            for i, ln in enumerate(new, len(old) + 1):
                p = ln.split('\t')
                if len(p) != 3 or not p[2].strip():
                    print('%s/%s:%d: want label<TAB>lang<TAB>text' % (d, l, i)); bad += 1; continue
                lab, code, text = p
                if lab not in labels:
                    print('%s/%s:%d: label %r' % (d, l, i, lab)); bad += 1
                if code not in CODES.get(l, {l}):
                    print('%s/%s:%d: language code %r' % (d, l, i, code)); bad += 1
                low = text.strip().casefold()
                for c in [l] + sorted(CODES.get(l, ())):
                    if any(low.startswith(c + s) for s in (':', '|', '/', ' |', ' /', ' :')):
                        print('%s/%s:%d: text starts with a code' % (d, l, i)); bad += 1
                if low in seen or low in mine:
                    print('%s/%s:%d: repeats an existing line: %s' % (d, l, i, text)); bad += 1
                mine.add(low)
                if lab == 'opt_out' and len(text.split()) == 1:
                    words1 += 1
                cnt[lab] += 1
            n = sum(cnt.values())
            if n != want:
                print('%s/%s: %d new lines, want %d' % (d, l, n, want)); bad += 1
            if words1 > 2:
                print('%s/%s: %d one-word opt-outs, at most 2' % (d, l, words1)); bad += 1
            print('%s/%s: %d new %s' % (d, l, n, dict(cnt)))
    print('OK' if not bad else '%d problems' % bad)
    sys.exit(1 if bad else 0)

main()
