#!/usr/bin/env python3
"""csweep.py: inbound serve-path sweep over opt_out_threshold x clause_threshold (x first_clause_floor)
for SETS = [(model_file, tsv)...] (env SETS as python literal); GRID env: list of (thr, clause, floor)."""
import os, ast
from sgcorpus import classify, inbound_counts, read_rows
sets = ast.literal_eval(os.environ['SETS'])
grid = eval(os.environ['GRID'])  # a literal list, or a comprehension over thresholds
sg = os.environ.get('SG', '/tmp/sg')
for mf, tsv in sets:
    rows = read_rows([tsv])
    for thr, cl, fl in grid:
        cfg = '/tmp/csweep.yaml'
        open(cfg, 'w').write('inbound:\n  unsigned: true\noptout:\n  model:\n    path: %s\n    opt_out_threshold: %s\n    clause_threshold: %s\n    first_clause_floor: %s\n' % (mf, thr, cl, fl))
        c = inbound_counts(rows, [j['intent'] for j in classify(sg, [r[2] for r in rows], cfg)])
        print('%-22s thr %.2f clause %.2f floor %.2f  acc %.2f recall %.2f (%d missed) fo %.2f (%d)' % (os.path.basename(tsv)[:22], thr, cl, fl,
              100 - 100 * c['wrong'] / c['n'], 100 - 100 * c['miss'] / c['oo'], c['miss'], 100 * c['fo'] / c['neg'], c['fo']), flush=True)
