#!/usr/bin/env python3
"""score.py SENDGUARD DIR_OR_FILE...: inbound (serve path, `optout classify`) and outbound
(`model eval --split all`: blocked and slowed as the policies decide) figures of a set of rounds.
A DIR holds inbound.tsv and outbound.tsv (collect.py); CFG=config passes optout.model settings."""
import json, os, re, subprocess, sys, tempfile
sg, args = sys.argv[1], sys.argv[2:]
inb, outb = [], []
for a in args:
    if os.path.isdir(a):
        inb.append(os.path.join(a, 'inbound.tsv')); outb.append(os.path.join(a, 'outbound.tsv'))
    elif 'outbound' in a:
        outb.append(a)
    else:
        inb.append(a)
rows = [l.rstrip('\n').split('\t', 2) for f in inb for l in open(f, encoding='utf-8') if l.strip() and not l.startswith('#')]
if rows:
    extra = ['--config', os.environ['CFG']] if os.environ.get('CFG') else []
    out = subprocess.run([sg, 'optout', 'classify', '--top', '0'] + extra, input='\n'.join(r[2] for r in rows) + '\n',
                         capture_output=True, text=True, check=True).stdout.splitlines()
    oo = miss = neg = fo = wrong = 0
    for (lab, _, _), o in zip(rows, out):
        it = json.loads(o)['intent']
        if lab == 'opt_out': oo += 1; miss += it != 'opt_out'
        else: neg += 1; fo += it == 'opt_out'
        wrong += it != lab
    print('inbound  %d replies: accuracy %.2f %%, opt-out recall %.2f %% (%d of %d missed), false opt-outs %.2f %% (%d of %d)' % (
        len(rows), 100 - 100 * wrong / len(rows), 100 - 100 * miss / oo, miss, oo, 100 * fo / neg, fo, neg))
if outb:
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, 'all.tsv'), 'w', encoding='utf-8') as w:
            for f in outb: w.write(open(f, encoding='utf-8').read())
        ev = subprocess.run([sg, 'model', 'eval', '--task', 'outbound', '--split', 'all', '--data', os.path.join(d, 'all.tsv')],
                            capture_output=True, text=True, check=True).stdout
    t = {}
    for l in ev.splitlines():
        m = re.match(r'^(\w+)\s+all\s+(\d+)\s+([\d.]+)%\s+([\d.]+)%', l)
        if m: t[m[1]] = (int(m[2]), float(m[3]), float(m[4]))
    v = [t[k] for k in t if k != 'transactional']
    n = sum(x[0] for x in v)
    bl = sum(x[0] * x[1] for x in v) / n
    bs = sum(x[0] * (x[1] + x[2]) for x in v) / n
    tr = t['transactional']
    print('outbound %d messages: violations blocked %.1f %%, blocked or slowed %.1f %% (of %d); legitimate blocked %.2f %%, slowed %.2f %% (of %d)' % (
        n + tr[0], bl, bs, n, tr[1], tr[2], tr[0]))
