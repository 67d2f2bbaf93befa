#!/usr/bin/env python3
"""counts.py TESTDATA [write]: the per-language counts table of TESTDATA/README.md ("## Counts",
between the counts markers); prints it, and with "write" replaces it in the README."""
import collections, os, sys
from sgcorpus import LANGS
td = sys.argv[1]
IN = ['opt_out', 'opt_in', 'none']
OUT = ['transactional', 'promotional', 'cold_outreach', 'political', 'scam']
rows = ['| lang | inbound | inbound opt_out / opt_in / none | outbound | outbound transactional / promotional / cold_outreach / political / scam | variants (inbound + outbound) |',
        '| --- | ---: | --- | ---: | --- | --- |']
tin = tout = 0
for l in LANGS:
    c = {d: collections.Counter() for d in ('inbound', 'outbound')}
    v = collections.Counter()
    for d in c:
        for ln in open(os.path.join(td, d, l + '.tsv'), encoding='utf-8'):
            if not ln.strip() or ln.startswith('#'): continue
            lab, code, _ = ln.split('\t', 2)
            c[d][lab] += 1; v[code] += 1
    ni, no = sum(c['inbound'].values()), sum(c['outbound'].values())
    tin += ni; tout += no
    var = '-' if set(v) == {l} else ', '.join('%s %d' % (k, v[k]) for k in sorted(v))
    rows.append('| %s | %d | %s | %d | %s | %s |' % (l, ni, ' / '.join(str(c['inbound'][k]) for k in IN), no, ' / '.join(str(c['outbound'][k]) for k in OUT), var))
rows.append('| **total** | **%d** | | **%d** | | |' % (tin, tout))
table = '\n'.join(rows)
if len(sys.argv) > 2 and sys.argv[2] == 'write':
    p = os.path.join(td, 'README.md'); s = open(p, encoding='utf-8').read()
    a, b = s.index('<!-- counts:start -->') + len('<!-- counts:start -->\n'), s.index('<!-- counts:end -->')
    open(p, 'w', encoding='utf-8').write(s[:a] + table + '\n' + s[b:])
else:
    print(table)
