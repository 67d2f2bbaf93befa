#!/usr/bin/env python3
"""apply.py N: append the lines branches rN{a..d} added to the same files in the working tree,
leaving out a line whose text (casefolded) is already in the corpus: rounds written at the same
time are checked against main only, so two of them can repeat a short reply."""
import glob, os, subprocess, sys
n = sys.argv[1]
TD = 'internal/model/testdata'
seen = {d: {ln.split('\t', 2)[2].strip().casefold() for f in glob.glob('%s/%s/*.tsv' % (TD, d))
            for ln in open(f, encoding='utf-8') if ln.count('\t') >= 2 and not ln.startswith('#')}
        for d in ('inbound', 'outbound')}
for w in 'abcd':
    diff = subprocess.run(['git', 'diff', 'main...r%s%s' % (n, w), '--', TD + '/inbound', TD + '/outbound'],
                          capture_output=True, text=True, check=True).stdout
    path, add = None, {}
    for l in diff.splitlines():
        if l.startswith('+++ '):
            path = l[6:]
        elif l.startswith('+') and path:
            add.setdefault(path, []).append(l[1:])
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
