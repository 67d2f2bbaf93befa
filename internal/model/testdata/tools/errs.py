#!/usr/bin/env python3
"""errs.py SGBIN FILE.tsv...: classify inbound lines with `SGBIN optout classify` (CFG=config),
print counts by decision source and write misses/false opt-outs to stdout as TSV."""
import os, sys, collections
from sgcorpus import classify, read_rows
sg, files = sys.argv[1], sys.argv[2:]
rows = read_rows(files)
res = classify(sg, [r[2] for r in rows], os.environ.get('CFG'), top=3)
c = collections.Counter()
for (lab, lang, text), j in zip(rows, res):
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
