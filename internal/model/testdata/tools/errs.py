#!/usr/bin/env python3
"""errs.py SGBIN FILE.tsv...: classify inbound lines with `SGBIN optout classify`,
print counts by decision source and write misses/false opt-outs to stdout as TSV."""
import json, subprocess, sys, collections
sg, files = sys.argv[1], sys.argv[2:]
rows = []
for f in files:
    for ln in open(f, encoding='utf-8'):
        ln = ln.rstrip('\n')
        if not ln or ln.startswith('#'): continue
        lab, lang, text = ln.split('\t', 2)
        rows.append((lab, lang, text))
inp = '\n'.join(r[2] for r in rows) + '\n'
import os
extra = ['--config', os.environ['CFG']] if os.environ.get('CFG') else []
out = subprocess.run([sg, 'optout', 'classify', '--top', '3'] + extra, input=inp, capture_output=True, text=True, check=True).stdout.splitlines()
assert len(out) == len(rows), (len(out), len(rows))
c = collections.Counter()
for (lab, lang, text), o in zip(rows, out):
    j = json.loads(o)
    it, by = j['intent'], j['by']
    if lab == 'opt_out':
        c['oo'] += 1
        if it != 'opt_out':
            c['miss'] += 1; c['miss/' + by] += 1
            print('MISS', by, lang, round(j['probabilities']['opt_out'], 3), text, sep='\t')
    else:
        c['neg'] += 1
        if it == 'opt_out':
            c['fo'] += 1; c['fo/' + by] += 1
            print('FO', by, lab, lang, j.get('matched', ''), round(j['probabilities']['opt_out'], 3), text, sep='\t')
    if lab != it: c['wrong'] += 1
c['n'] = len(rows)
print(dict(c), file=sys.stderr)
print('acc %.2f recall %.2f fo %.2f' % (100 - 100 * c['wrong'] / c['n'], 100 - 100 * c['miss'] / c['oo'], 100 * c['fo'] / c['neg']), file=sys.stderr)
