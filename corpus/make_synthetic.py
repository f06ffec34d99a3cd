#!/usr/bin/env python3
"""Synthetic news-like documents, for benchmarks at 10^4 to 10^6+ documents.

usage: make_synthetic.py --seed N --count N [--out FILE] LEARN_FILE.jsonl...
       make_synthetic.py --mix-from FILE.jsonl --seed N --count N [--out FILE]

The first form learns from the JSON lines files given (their title and body):
a character bigram model of the CJK text (where runs start, which character
follows which, by count) and the Latin words with their counts. It then writes
COUNT documents, one JSON object a line, to FILE (through FILE.tmp, renamed at
the end) or to standard output:

  {"id": "syn-00000001", "title": 8-30 chars, "body": 200-2000 chars,
   "source": one of 50 outlets (Zipf), "tags": 1-4 of 300 (Zipf),
   "date": 2015-01-01 to 2025-12-31, "url": "https://example.com/..."}

The second form writes COUNT queries, one a line, for tests/bench/bench_engine:
each is 1-3 terms (a CJK bigram or trigram, sometimes a Latin word) taken
from the first 10,000 documents of FILE.

Same seed and same learn files give byte-identical output, and the first K
documents of a run with --count N are those of a run with --count K: corpora
of different sizes share their prefix (tests/bench/scale.sh relies on it).

Design: walking a Markov chain one character at a time in Python would manage
a few thousand documents a second. Instead the chain is walked once, at
start, into a fixed pool of 100,000 sentences (1-4 clauses with Chinese
punctuation, some clauses holding a Latin word, a made-up name, a number or
quotes; already JSON-escaped), and a body is random.choices over the pool,
joined; everything else per document is drawn in batches of 1,000 from
precomputed cumulative weights. Bigrams inside a clause follow the learned
model; after punctuation the text starts afresh, as learned text does. The
pool is fixed in size, so the language stays the same as the corpus grows
(as a real one's vocabulary nearly does); each sentence recurs in about
COUNT/4,000 documents, which bounds how rare long phrases get.

Learn files over 12 MiB are read one line in k, to keep learning to seconds.
"""
import argparse
import datetime
import itertools
import json
import math
import os
import re
import sys
import time
from collections import Counter
from random import Random

CJK_RUN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[.+-][A-Za-z0-9]+)*")
QUERY_WORDS = {"or", "and", "not"}       # operators in query/qparse, not terms

BATCH = 1000                             # documents drawn at once
POOL_SENTENCES = 100000                  # body sentences walked at start
POOL_TITLE_PARTS = 50000
LEARN_BYTES_PER_FILE = 12 << 20          # bigger files: every k-th line, as much
MIN_SUCCESSOR_COUNT = 2                  # bigrams seen once are dropped
MAX_SUCCESSORS = 400                     # per character, the most frequent
BODY_MIN, BODY_MAX = 200, 2000           # characters
TITLE_MIN, TITLE_MAX = 8, 30

# punctuation after a clause inside a sentence, and at its end (news-like)
CLAUSE_INNER = [("，", 80), ("、", 10), ("；", 6), ("：", 4)]
SENTENCE_ENDS = [("。", 92), ("！", 4), ("？", 4)]
PARAGRAPH_AFTER = 0.25                   # a sentence followed by a blank line

TOPICS = ("人工智能 芯片 新能源 汽车 房地产 银行 保险 证券 基金 医药 医疗 教育 体育 足球 篮球 "
          "电影 音乐 游戏 电商 物流 航空 铁路 旅游 餐饮 农业 能源 石油 钢铁 环保 气候 军事 外交 "
          "法律 就业 消费 互联网 手机 通信 云计算 大数据 区块链 机器人 航天 半导体 电池 光伏 化工 "
          "零售 文化 科研").split()
ASPECTS = ["", "政策", "市场", "投资", "监管", "技术"]
OUTLET_PLACES = ("华夏 东方 南方 北方 长江 珠江 海峡 中原 西部 环球 新京 申城 蓉城 鹏城 星辰 晨光 "
                 "远见 观潮 先锋 大河 山海 云端 天府 齐鲁 燕赵").split()
OUTLET_KINDS = "日报 晚报 时报 财经 新闻网 周刊 观察 商报 科技报 快讯".split()
NAMES = ["Zentrova", "Kalimex Labs", "Orbisoft", "Velqor", "Brightmoor Capital", "Tessaline",
         "Quillon Systems", "Norvana", "Lumetra", "Arcadyne", "Halvex", "Stellique",
         "Jonah Crestwell", "Mira Halden", "Tobias Renk", "Elise Varga", "Dario Kessel",
         "Nadia Fenwick", "Owen Trask", "Sofia Lindqvist", "Ravi Mehtani", "Clara Wexley"]
UNITS = ["亿元", "万元", "元", "万人", "家", "个", "项", "倍", "吨", "公里", "万台", "亿美元"]


def zipf_cum(n, s=1.0):
    return list(itertools.accumulate(1.0 / (r ** s) for r in range(1, n + 1)))


class Model:
    """Character bigrams and Latin words counted over the learn files."""

    def __init__(self, paths):
        pairs = Counter()
        words = Counter()
        for path in paths:
            runs = []
            stride = max(1, -(-os.path.getsize(path) // LEARN_BYTES_PER_FILE))
            with open(path, encoding="utf-8") as f:
                for line_no, line in enumerate(f, 1):
                    if line_no % stride:
                        continue
                    try:
                        doc = json.loads(line)
                    except ValueError:
                        sys.exit("%s:%d: not JSON" % (path, line_no))
                    for field in ("title", "body"):
                        text = doc.get(field)
                        if isinstance(text, str):
                            runs.extend(CJK_RUN.findall(text))
                            words.update(LATIN_WORD.findall(text))
                    if len(runs) > 200000:
                        self._count(runs, pairs)
                        runs = []
            self._count(runs, pairs)
        starts = Counter()
        follows = {}
        for (a, b), n in pairs.items():
            if a == "\0":
                starts[b] += n
            elif b != "\0" and n >= MIN_SUCCESSOR_COUNT:
                follows.setdefault(a, []).append((n, b))
        if not starts:
            sys.exit("make_synthetic: no CJK text in the learn files")
        self.start_chars, self.start_cum = self._cumulate(starts.items())
        self.next_chars, self.next_cum = {}, {}
        for a, succ in follows.items():
            succ.sort(key=lambda nb: (-nb[0], nb[1]))
            chars, cum = self._cumulate((b, n) for n, b in succ[:MAX_SUCCESSORS])
            self.next_chars[a], self.next_cum[a] = chars, cum
        # words of one letter and the query operators make poor terms
        kept = sorted(((w, n) for w, n in words.items()
                       if len(w) > 1 and w.lower() not in QUERY_WORDS),
                      key=lambda wn: (-wn[1], wn[0]))
        self.words, self.words_cum = self._cumulate(kept) if kept else (["AI"], [1])

    @staticmethod
    def _count(runs, pairs):
        text = "\0" + "\0".join(runs) + "\0"
        pairs.update(zip(text, text[1:]))

    @staticmethod
    def _cumulate(items):
        items = sorted(items, key=lambda cn: (-cn[1], cn[0]))
        return [c for c, _ in items], list(itertools.accumulate(n for _, n in items))


class Walker:
    """Walks the chain; draws are made in batches (32 successors per character)."""

    def __init__(self, model, rng):
        self.m, self.rng = model, rng
        self.pending = {}
        self.starts = []

    def start(self):
        if not self.starts:
            self.starts = self.rng.choices(self.m.start_chars, cum_weights=self.m.start_cum,
                                           k=256)
        return self.starts.pop()

    def run(self, n_chars):
        c = self.start()
        out = [c]
        pending, next_chars, next_cum = self.pending, self.m.next_chars, self.m.next_cum
        choices = self.rng.choices
        for _ in range(n_chars - 1):
            queue = pending.get(c)
            if not queue:
                chars = next_chars.get(c)
                if chars is None:               # a run's end: start afresh
                    c = self.start()
                    out.append(c)
                    continue
                queue = pending[c] = choices(chars, cum_weights=next_cum[c], k=32)
            c = queue.pop()
            out.append(c)
        return "".join(out)


def number(rng):
    kind = rng.randrange(6)
    if kind == 0:
        return "%d年" % rng.randint(1990, 2025)
    if kind == 1:
        return "%d月%d日" % (rng.randint(1, 12), rng.randint(1, 28))
    if kind == 2:
        return "%.1f%%" % (rng.random() * 60)
    if kind == 3:
        return "%d%s" % (rng.randint(2, 999), rng.choice(UNITS))
    if kind == 4:
        return "%.2f%s" % (rng.random() * 100, rng.choice(UNITS))
    return str(rng.randint(10, 99999))


def insert(core, piece, rng):
    at = rng.randint(0, len(core))
    return core[:at] + piece + core[at:]


def clause_lengths():
    """Lengths 2-26 characters, most near 8, as clauses in news run."""
    lengths = list(range(2, 27))
    return lengths, list(itertools.accumulate(n ** 3 * math.exp(-n / 2.7) for n in lengths))


def clause(walker, n_chars, rng):
    """A clause of the chain, now and then with a Latin word, a name, a number or quotes."""
    m = walker.m
    core = walker.run(n_chars)
    extra = rng.random()
    if extra < 0.06:
        core = insert(core, rng.choices(m.words, cum_weights=m.words_cum)[0], rng)
    elif extra < 0.08:
        core = insert(core, rng.choice(NAMES), rng)
    elif extra < 0.16:
        core = insert(core, number(rng), rng)
    elif extra < 0.18 and len(core) > 4:
        at = rng.randint(0, len(core) - 4)
        span = rng.randint(2, min(8, len(core) - at))
        left, right = ("“", "”") if rng.random() < 0.7 else ("《", "》")
        core = core[:at] + left + core[at:at + span] + right + core[at + span:]
    return core


def build_pool(model, rng):
    """Sentences of 1-4 clauses, JSON-escaped, and the parts titles are made of."""
    walker = Walker(model, rng)
    lengths, lengths_cum = clause_lengths()
    inner = [p for p, _ in CLAUSE_INNER]
    inner_cum = list(itertools.accumulate(w for _, w in CLAUSE_INNER))
    final = [p for p, _ in SENTENCE_ENDS]
    final_cum = list(itertools.accumulate(w for _, w in SENTENCE_ENDS))

    pool = []
    for n_clauses in rng.choices((1, 2, 3, 4), cum_weights=(25, 60, 85, 100),
                                 k=POOL_SENTENCES):
        n_chars = rng.choices(lengths, cum_weights=lengths_cum, k=n_clauses)
        seps = rng.choices(inner, cum_weights=inner_cum, k=n_clauses - 1)
        seps.append(rng.choices(final, cum_weights=final_cum)[0])
        if rng.random() < PARAGRAPH_AFTER:
            seps[-1] += "\\n\\n"              # JSON-escaped: pool entries go out as they are
        pool.append("".join(clause(walker, n, rng) + sep for n, sep in zip(n_chars, seps)))
    mean_len = sum(map(len, pool)) / len(pool)

    title_lengths = list(range(4, 15))
    title_cum = list(itertools.accumulate(1 for _ in title_lengths))
    titles = []
    for n in rng.choices(title_lengths, cum_weights=title_cum, k=POOL_TITLE_PARTS):
        part = walker.run(n)
        if rng.random() < 0.08:
            part = rng.choices(model.words, cum_weights=model.words_cum)[0] + part
        titles.append(part)
    return pool, mean_len, titles


def outlets():
    names = []
    for i in range(50):
        names.append(OUTLET_PLACES[i % len(OUTLET_PLACES)] +
                     OUTLET_KINDS[(i * 3 + i // len(OUTLET_PLACES)) % len(OUTLET_KINDS)])
    assert len(set(names)) == len(names)
    return names


def tags():
    return [topic + aspect for aspect in ASPECTS for topic in TOPICS][:300]


def dates():
    day = datetime.date(2015, 1, 1)
    last = datetime.date(2025, 12, 31)
    out = []
    while day <= last:
        out.append(day.isoformat())
        day += datetime.timedelta(days=1)
    return out


def generate(model, seed, count, out):
    rng = Random(seed)
    start = time.monotonic()
    pool, mean_len, title_parts = build_pool(model, rng)
    pooled = time.monotonic()
    sources = outlets()
    sources_cum = zipf_cum(len(sources))
    tag_names = tags()
    tags_cum = zipf_cum(len(tag_names))
    all_dates = dates()
    date_paths = [d.replace("-", "/") for d in all_dates]
    n_dates = len(all_dates)
    seps = ["", " ", "：", "，", " "]
    log_median, sigma = math.log(650), 0.55   # body length: lognormal, clipped
    choices, random = rng.choices, rng.random
    written = 0
    for first in itertools.count(0, BATCH):
        if written >= count:
            break
        srcs = choices(range(len(sources)), cum_weights=sources_cum, k=BATCH)
        day_ids = [int(random() * n_dates) for _ in range(BATCH)]
        n_tags = choices((1, 2, 3, 4), cum_weights=(35, 70, 90, 100), k=BATCH)
        lines = []
        for j in range(BATCH):
            doc_no = first + j + 1
            target = min(BODY_MAX, max(BODY_MIN, rng.lognormvariate(log_median, sigma)))
            parts = choices(pool, k=max(1, int(target / mean_len + 0.5)))
            body = "".join(parts)
            real = len(body) - body.count("\\n")
            while real < BODY_MIN + 2:          # + the blank line dropped at the end
                more = choices(pool, k=4)
                parts += more
                body += "".join(more)
                real = len(body) - body.count("\\n")
            while real > BODY_MAX and len(parts) > 1:
                drop = parts.pop()
                body = body[:-len(drop)]
                real = len(body) - body.count("\\n")
            if body.endswith("\\n\\n"):
                body = body[:-4]

            title = choices(title_parts)[0]
            if len(title) < TITLE_MIN or random() < 0.5:
                title += seps[int(random() * len(seps))] + choices(title_parts)[0]
            if len(title) > TITLE_MAX:
                title = title[:TITLE_MAX].rstrip(" ：，")
            while len(title) < TITLE_MIN:
                title += choices(title_parts)[0][:TITLE_MAX - len(title)]

            doc_tags = list(dict.fromkeys(choices(tag_names, cum_weights=tags_cum,
                                                  k=n_tags[j])))
            s = srcs[j]
            lines.append(
                '{"id": "syn-%08d", "title": "%s", "body": "%s", "source": "%s", '
                '"tags": ["%s"], "date": "%s", "url": "https://example.com/s%02d/%s/syn-%08d.html"}\n'
                % (doc_no, title, body, sources[s], '", "'.join(doc_tags),
                   all_dates[day_ids[j]], s + 1, date_paths[day_ids[j]], doc_no))
        take = min(BATCH, count - written)
        out.write("".join(lines[:take]))
        written += take
    end = time.monotonic()
    print("make_synthetic: pool of %d sentences in %.1f s, then %d documents in %.1f s "
          "(%.0f a second)" % (len(pool), pooled - start, written, end - pooled,
                               written / max(end - pooled, 1e-9)), file=sys.stderr)
    return written


def query_mix(path, seed, count, out):
    docs = []
    with open(path, encoding="utf-8") as f:
        for line in itertools.islice(f, 10000):
            doc = json.loads(line)
            text = doc.get("title", "") + "\n" + doc.get("body", "")
            runs = [r for r in CJK_RUN.findall(text) if len(r) >= 2]
            words = [w for w in LATIN_WORD.findall(text)
                     if len(w) > 1 and w.lower() not in QUERY_WORDS]
            if runs:
                docs.append((runs, words))
    if not docs:
        sys.exit("make_synthetic: no CJK text in %s" % path)
    rng = Random(seed)
    for _ in range(count):
        runs, words = docs[rng.randrange(len(docs))]
        terms = []
        for _ in range(rng.choices((1, 2, 3), cum_weights=(40, 80, 100))[0]):
            if words and rng.random() < 0.1:
                terms.append(rng.choice(words))
                continue
            run = rng.choice(runs)
            n = 3 if len(run) >= 3 and rng.random() < 0.35 else 2
            at = rng.randint(0, len(run) - n)
            terms.append(run[at:at + n])
        out.write(" ".join(terms) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--out", help="output file (default: standard output)")
    ap.add_argument("--mix-from", metavar="FILE.jsonl",
                    help="write a query mix taken from this corpus instead")
    ap.add_argument("learn", nargs="*", metavar="LEARN_FILE.jsonl")
    args = ap.parse_args()
    if args.count < 0:
        ap.error("--count must be 0 or more, got %d" % args.count)
    if not args.mix_from and not args.learn:
        ap.error("give at least one LEARN_FILE.jsonl (or --mix-from)")

    if args.out:
        out = open(args.out + ".tmp", "w", encoding="utf-8", newline="\n", buffering=1 << 20)
    else:
        sys.stdout.reconfigure(encoding="utf-8", newline="\n")
        out = sys.stdout
    if args.mix_from:
        query_mix(args.mix_from, args.seed, args.count, out)
    else:
        model = Model(args.learn)
        print("make_synthetic: learned %d characters that start runs, %d that lead on, "
              "%d Latin words" % (len(model.start_chars), len(model.next_chars),
                                  len(model.words)), file=sys.stderr)
        generate(model, args.seed, args.count, out)
    if args.out:
        out.close()
        os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
