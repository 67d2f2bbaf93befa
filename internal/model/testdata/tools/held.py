#!/usr/bin/env python3
"""held.py SENDGUARD [TESTDATA]: the held-out split and the fresh set as serve decides, in the form
the README reports them: inbound accuracy / opt-out recall / false opt-outs, outbound violations
blocked / blocked or slowed, legitimate blocked / slowed."""
import re, subprocess, sys
from sgcorpus import TD, outbound_eval
sg = sys.argv[1]
td = sys.argv[2] if len(sys.argv) > 2 else TD
for name, data, split in (('held out', td, 'test'), ('fresh set', td + '/fresh', 'all')):
    out = subprocess.run([sg, 'model', 'eval', '--task', 'inbound', '--data', data, '--split', split], capture_output=True, text=True, check=True).stdout
    serve = out[out.index('as serve decides'):]
    m = re.search(r'opt-out recall ([\d.]+)%, false opt-outs ([\d.]+)%', serve)
    a = re.search(r'examples (\d+)\s+accuracy ([\d.]+)%', serve)
    n, bl, bs, tr = outbound_eval(sg, data, split)
    print('%-9s inbound %s / %s / %s %% (%s replies); outbound %.1f / %.1f %%, %.2f / %.2f %% (%d messages)' % (
        name, a[2], m[1], m[2], a[1], bl, bs, tr[1], tr[2], n + tr[0]))
