#!/usr/bin/env python3
"""collect.py N: the lines branches rN{a..d} added (diff against their merge-base with main)
into $RR (default /work/rr)/rN/{inbound,outbound}.tsv. Run only after all four writers reported."""
import os, sys
from sgcorpus import TD, branch_additions
n = sys.argv[1]
root = os.environ.get('RR', '/work/rr')
os.makedirs('%s/r%s' % (root, n), exist_ok=True)
for d in ('inbound', 'outbound'):
    lines = [l for _, _, l in branch_additions(n, [TD + '/' + d])]
    open('%s/r%s/%s.tsv' % (root, n, d), 'w').write(''.join(l + '\n' for l in lines))
    print(d, len(lines))
