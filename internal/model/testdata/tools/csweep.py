#!/usr/bin/env python3
"""csweep.py: inbound serve-path sweep over opt_out_threshold x clause_threshold (x first_clause_floor)
for SETS = [(model_file, tsv)...] (env SETS as python literal); GRID env: list of (thr, clause, floor)."""
import os, subprocess, sys, ast, json
sets = ast.literal_eval(os.environ['SETS'])
grid = eval(os.environ['GRID'])
sg = os.environ.get('SG', '/tmp/sg')
for mf, tsv in sets:
    rows = [l.rstrip('\n').split('\t', 2) for l in open(tsv, encoding='utf-8') if l.strip() and not l.startswith('#')]
    inp = '\n'.join(r[2] for r in rows) + '\n'
    for thr, cl, fl in grid:
        cfg = '/tmp/csweep.yaml'
        open(cfg, 'w').write('inbound:\n  unsigned: true\noptout:\n  model:\n    path: %s\n    opt_out_threshold: %s\n    clause_threshold: %s\n    first_clause_floor: %s\n' % (mf, thr, cl, fl))
        out = subprocess.run([sg, 'optout', 'classify', '--top', '0', '--config', cfg], input=inp, capture_output=True, text=True, check=True).stdout.splitlines()
        oo = miss = neg = fo = wrong = 0
        for (lab, lang, text), o in zip(rows, out):
            it = json.loads(o)['intent']
            if lab == 'opt_out':
                oo += 1; miss += it != 'opt_out'
            else:
                neg += 1; fo += it == 'opt_out'
            wrong += it != lab
        print('%-22s thr %.2f clause %.2f floor %.2f  acc %.2f recall %.2f (%d missed) fo %.2f (%d)' % (os.path.basename(tsv)[:22], thr, cl, fl, 100 - 100 * wrong / len(rows), 100 - 100 * miss / oo, miss, 100 * fo / neg, fo), flush=True)
