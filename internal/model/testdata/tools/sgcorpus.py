"""Shared by the corpus tools: the corpus layout, reading TSV files, the serve path
(`sendguard optout classify`), its counts, the outbound table of `sendguard model eval`, and the
lines a round's branches added."""
import json, re, subprocess

TD = 'internal/model/testdata'
LANGS = 'ar en hi ur bn tl id ml ta ne fa tr fr es pt de ru'.split()
WRITERS = 'abcd'


def read_rows(files):
    """(label, lang, text) of every line of the TSV files, comments and blank lines left out."""
    return [tuple(l.rstrip('\n').split('\t', 2)) for f in files for l in open(f, encoding='utf-8')
            if l.strip() and not l.startswith('#')]


def classify(sg, texts, cfg=None, top=0):
    """`sg optout classify` of each text (one JSON object each), with config cfg when given."""
    args = [sg, 'optout', 'classify', '--top', str(top)] + (['--config', cfg] if cfg else [])
    out = subprocess.run(args, input='\n'.join(texts) + '\n', capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(out) == len(texts), (len(out), len(texts))
    return [json.loads(o) for o in out]


def inbound_counts(rows, intents):
    """Replies, opt-outs, missed, others, false opt-outs and wrong decisions of labelled rows."""
    c = dict(n=len(rows), oo=0, miss=0, neg=0, fo=0, wrong=0)
    for (lab, _, _), it in zip(rows, intents):
        if lab == 'opt_out':
            c['oo'] += 1; c['miss'] += it != 'opt_out'
        else:
            c['neg'] += 1; c['fo'] += it == 'opt_out'
        c['wrong'] += it != lab
    return c


def inbound_line(c):
    return 'accuracy %.2f %%, opt-out recall %.2f %% (%d of %d missed), false opt-outs %.2f %% (%d of %d)' % (
        100 - 100 * c['wrong'] / c['n'], 100 - 100 * c['miss'] / c['oo'], c['miss'], c['oo'], 100 * c['fo'] / c['neg'], c['fo'], c['neg'])


def outbound_eval(sg, data, split):
    """From `sg model eval --task outbound`: violations, % blocked, % blocked or slowed, and the
    legitimate messages' (n, % blocked, % slowed), as the policies decide."""
    ev = subprocess.run([sg, 'model', 'eval', '--task', 'outbound', '--split', split, '--data', data],
                        capture_output=True, text=True, check=True).stdout
    t = {}
    for l in ev.splitlines():
        m = re.match(r'^(\w+)\s+all\s+(\d+)\s+([\d.]+)%\s+([\d.]+)%', l)
        if m:
            t[m[1]] = (int(m[2]), float(m[3]), float(m[4]))
    v = [t[k] for k in t if k != 'transactional']
    n = sum(x[0] for x in v)
    return n, sum(x[0] * x[1] for x in v) / n, sum(x[0] * (x[1] + x[2]) for x in v) / n, t['transactional']


def split_line(name, sg, data, split):
    """One line of the held-out report: split of data (a corpus directory) as serve decides,
    inbound accuracy / opt-out recall / false opt-outs from `model eval --task inbound`, then the
    outbound figures of outbound_eval."""
    out = subprocess.run([sg, 'model', 'eval', '--task', 'inbound', '--data', data, '--split', split],
                         capture_output=True, text=True, check=True).stdout
    serve = out[out.index('as serve decides'):]
    m = re.search(r'opt-out recall ([\d.]+)%, false opt-outs ([\d.]+)%', serve)
    a = re.search(r'examples (\d+)\s+accuracy ([\d.]+)%', serve)
    n, bl, bs, tr = outbound_eval(sg, data, split)
    return '%-9s inbound %s / %s / %s %% (%s replies); outbound %.1f / %.1f %%, %.2f / %.2f %% (%d messages)' % (
        name, a[2], m[1], m[2], a[1], bl, bs, tr[1], tr[2], n + tr[0])


def branch_additions(n, paths):
    """(writer, file, line) of every line branch rN{w} added since its merge-base with main."""
    out = []
    for w in WRITERS:
        diff = subprocess.run(['git', 'diff', 'main...r%s%s' % (n, w), '--'] + paths,
                              capture_output=True, text=True, check=True).stdout
        path = None
        for l in diff.splitlines():
            if l.startswith('+++ '):
                path = l[6:]
            elif l.startswith('+') and path:
                out.append((w, path, l[1:]))
    return out
