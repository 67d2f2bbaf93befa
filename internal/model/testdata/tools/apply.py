#!/usr/bin/env python3
"""apply.py N: append the lines branches rN{a..d} added to the same files in the working tree,
leaving out a line whose text (casefolded) is already in the corpus: rounds written at the same
time are checked against main only, so two of them can repeat a short reply."""
import glob, sys
from sgcorpus import TD, WRITERS, branch_additions, read_rows
n = sys.argv[1]
seen = {d: {r[2].strip().casefold() for r in read_rows(glob.glob('%s/%s/*.tsv' % (TD, d))) if len(r) == 3}
        for d in ('inbound', 'outbound')}
adds = branch_additions(n, [TD + '/inbound', TD + '/outbound'])
for w in WRITERS:
    add = {}
    for _, p, x in (a for a in adds if a[0] == w):
        add.setdefault(p, []).append(x)
    for p, ls in add.items():
        d = p.split('/')[-2]
        keep = []
        for x in ls:
            k = x.split('\t', 2)[2].strip().casefold()
            if k in seen[d]:
                print('  repeat left out:', p, x)
                continue
            seen[d].add(k); keep.append(x)
        with open(p, 'a', encoding='utf-8') as f:
            f.write(''.join(x + '\n' for x in keep))
        print(w, p, len(keep))
