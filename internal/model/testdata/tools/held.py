#!/usr/bin/env python3
"""held.py SENDGUARD [TESTDATA]: the held-out split and the fresh set as serve decides, in the form
the README reports them: inbound accuracy / opt-out recall / false opt-outs, outbound violations
blocked / blocked or slowed, legitimate blocked / slowed."""
import sys
from sgcorpus import TD, split_line
sg = sys.argv[1]
td = sys.argv[2] if len(sys.argv) > 2 else TD
for name, data, split in (('held out', td, 'test'), ('fresh set', td + '/fresh', 'all')):
    print(split_line(name, sg, data, split))
