#!/usr/bin/env python3
"""kinds.py SENDGUARD: the held-out split by the kind of round its lines came from, as serve
decides. Each corpus line's round is read from `git blame` (the subject of the commit that added
it: "corpus round N ...", "(round N ...", "corpus rN ..."); the kinds:
  early     the targeted sets before the rounds, and rounds 1 to 33 (hard cases on purpose, many
            labelled under conventions settled later);
  boundary  the stress rounds and the rounds written in pairs across a label boundary after 33
            (104, 112, 133, 137, 145, 153, 169) and the settled-question rounds 191 to 198;
  tester    rounds 207 to 209 and 211 to 213, and the replies of 215 and 216 (their outbound left out): written as an outside tester would, 40 % opt-outs,
            43 % violations;
  ordinary  every other round (an ordinary week of a few businesses per language).
Run from the repository root, on a checkout whose history holds the corpus commits."""
import os, re, subprocess, sys, tempfile
from sgcorpus import TD, split_line

BOUNDARY = {104, 112, 133, 137, 145, 153, 169} | set(range(191, 199))
TESTER = {207, 208, 209, 211, 212, 213, 215, 216}
SUBJECT = re.compile(r'corpus rounds? (\d+)|\(round (\d+)|corpus r(\d+)|round (\d+)')


def kind(subject):
    m = SUBJECT.search(subject)
    r = int(next(g for g in m.groups() if g)) if m else 0
    if r <= 33:
        return 'early'
    return 'boundary' if r in BOUNDARY else 'tester' if r in TESTER else 'ordinary'


def blame(path):
    """The kind of round of each line of path, in order."""
    out = subprocess.run(['git', 'blame', '--line-porcelain', path], capture_output=True, text=True, check=True).stdout
    subj, kinds, cur = {}, [], None
    for l in out.split('\n'):
        m = re.match(r'^([0-9a-f]{40}) \d+ \d+', l)
        if m:
            cur = m[1]
        elif l.startswith('summary '):
            subj.setdefault(cur, l[8:])
        elif l.startswith('\t'):
            kinds.append(kind(subj[cur]))
    return kinds


sg = sys.argv[1]
with tempfile.TemporaryDirectory() as tmp:
    files = {}
    for side in ('inbound', 'outbound'):
        for f in sorted(os.listdir(os.path.join(TD, side))):
            p = os.path.join(TD, side, f)
            lines = open(p, encoding='utf-8').read().split('\n')[:-1]
            ks = blame(p)
            assert len(ks) == len(lines), p
            for k, l in zip(ks, lines):
                key = (k, side)
                if key not in files:
                    os.makedirs(os.path.join(tmp, k, side), exist_ok=True)
                    files[key] = open(os.path.join(tmp, k, side, 'all.tsv'), 'w', encoding='utf-8')
                files[key].write(l + '\n')
    for f in files.values():
        f.close()
    for k in ('ordinary', 'tester', 'boundary', 'early'):
        d = os.path.join(tmp, k)
        if not os.path.isdir(d):
            continue
        print(split_line(k, sg, d, 'test'))
