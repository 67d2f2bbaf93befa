#!/usr/bin/env python3
"""held.py SENDGUARD [TESTDATA]: the held-out split and the fresh set as serve decides, in the form
the README reports them: inbound accuracy / opt-out recall / false opt-outs, outbound violations
blocked / blocked or slowed, legitimate blocked / slowed."""
import re, subprocess, sys
sg = sys.argv[1]
td = sys.argv[2] if len(sys.argv) > 2 else 'internal/model/testdata'
def ev(task, data, split):
    return subprocess.run([sg, 'model', 'eval', '--task', task, '--data', data, '--split', split], capture_output=True, text=True, check=True).stdout
for name, data, split in (('held out', td, 'test'), ('fresh set', td + '/fresh', 'all')):
    out = ev('inbound', data, split)
    serve = out[out.index('as serve decides'):]
    m = re.search(r'opt-out recall ([\d.]+)%, false opt-outs ([\d.]+)%', serve)
    a = re.search(r'examples (\d+)\s+accuracy ([\d.]+)%', serve)
    inb = '%s / %s / %s %% (%s replies)' % (a[2], m[1], m[2], a[1])
    out = ev('outbound', data, split)
    t = {}
    for l in out.splitlines():
        r = re.match(r'^(\w+)\s+all\s+(\d+)\s+([\d.]+)%\s+([\d.]+)%', l)
        if r: t[r[1]] = (int(r[2]), float(r[3]), float(r[4]))
    v = [t[k] for k in t if k != 'transactional']; n = sum(x[0] for x in v)
    tr = t['transactional']
    print('%-9s inbound %s; outbound %.1f / %.1f %%, %.2f / %.2f %% (%d messages)' % (name, inb,
          sum(x[0] * x[1] for x in v) / n, sum(x[0] * (x[1] + x[2]) for x in v) / n, tr[1], tr[2], n + tr[0]))
