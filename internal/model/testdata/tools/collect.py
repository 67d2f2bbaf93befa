#!/usr/bin/env python3
"""collect.py N: the lines branches rN{a..d} added (diff against their merge-base with main)
into $RR (default /work/rr)/rN/{inbound,outbound}.tsv. Run only after all four writers reported."""
import os, subprocess, sys
n = sys.argv[1]
root = os.environ.get('RR', '/work/rr')
os.makedirs('%s/r%s' % (root, n), exist_ok=True)
for d in ('inbound', 'outbound'):
    lines = []
    for w in 'abcd':
        diff = subprocess.run(['git', 'diff', 'main...r%s%s' % (n, w), '--', 'internal/model/testdata/' + d],
                              capture_output=True, text=True, check=True).stdout
        lines += [l[1:] for l in diff.splitlines() if l.startswith('+') and not l.startswith('+++')]
    open('%s/r%s/%s.tsv' % (root, n, d), 'w').write(''.join(l + '\n' for l in lines))
    print(d, len(lines))
