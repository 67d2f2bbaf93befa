#!/usr/bin/env python3
"""score.py SENDGUARD DIR_OR_FILE...: inbound (serve path, `optout classify`) and outbound
(`model eval --split all`: blocked and slowed as the policies decide) figures of a set of rounds.
A DIR holds inbound.tsv and outbound.tsv (collect.py); CFG=config passes optout.model settings."""
import os, sys, tempfile
from sgcorpus import classify, inbound_counts, inbound_line, outbound_eval, read_rows
sg, args = sys.argv[1], sys.argv[2:]
inb, outb = [], []
for a in args:
    if os.path.isdir(a):
        inb.append(os.path.join(a, 'inbound.tsv')); outb.append(os.path.join(a, 'outbound.tsv'))
    elif 'outbound' in a:
        outb.append(a)
    else:
        inb.append(a)
rows = read_rows(inb)
if rows:
    c = inbound_counts(rows, [j['intent'] for j in classify(sg, [r[2] for r in rows], os.environ.get('CFG'))])
    print('inbound  %d replies: %s' % (len(rows), inbound_line(c)))
if outb:
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, 'all.tsv'), 'w', encoding='utf-8') as w:
            for f in outb: w.write(open(f, encoding='utf-8').read())
        n, bl, bs, tr = outbound_eval(sg, os.path.join(d, 'all.tsv'), 'all')
    print('outbound %d messages: violations blocked %.1f %%, blocked or slowed %.1f %% (of %d); legitimate blocked %.2f %%, slowed %.2f %% (of %d)' % (
        n + tr[0], bl, bs, n, tr[1], tr[2], tr[0]))
