"""Byte-level BPE from scratch: merges learned by frequency, no unknown tokens, shorter sequences.

What it shows, measured on a synthetic corpus (made-up words built from stems and suffixes,
with Zipf-like word frequencies, so a few words are very common and most are rare):

- Training (Sennrich et al. 2016, arXiv 1508.07909; byte-level as in GPT-2): start from the
  256 byte values, count adjacent pairs inside words (weighted by word frequency), merge the
  most frequent pair into a new token, repeat. Words are pre-split on spaces, with the space
  kept at the start of the word (" the"), as GPT-2 does.
- Encoding applies the learned merges in order. Any string round-trips exactly, including
  words never seen in training and non-ASCII text (accents, emoji): the byte base means there
  is never an unknown token, while a word-level vocabulary built on the same corpus would
  meet out-of-vocabulary words on held-out text.
- More merges, fewer tokens: bytes per token rises with the vocabulary size, so sequences get
  shorter (cheaper attention, more text per context window) at the cost of a larger
  embedding table.
- Frequent words become single tokens; rare and unseen words are split into several pieces.
  Pieces follow frequency, which often lines up with the stems and suffixes the corpus was
  built from, but BPE has no notion of morphology (measured: how many learned tokens are
  exactly a stem or a suffix, reported without a claim).

Run: dlprep demo bpe-tokenizer
"""

from __future__ import annotations

import random
from collections import Counter

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = True

CONSONANTS, VOWELS = "bdfgklmnprstvz", "aeiou"
SUFFIXES = ["ing", "ed", "er", "s", "ly", "ness", ""]


def make_language(rng: random.Random, n_stems: int) -> list[str]:
    """Made-up stems (CV syllables) combined with suffixes: the corpus's words, by rank."""
    stems = set()
    while len(stems) < n_stems:
        stems.add("".join(rng.choice(CONSONANTS) + rng.choice(VOWELS)
                          for _ in range(rng.randint(1, 3))))  # fmt: skip
    words = [s + suf for s in sorted(stems) for suf in SUFFIXES]
    rng.shuffle(words)
    return words


def sample_text(rng: random.Random, words: list[str], n_words: int) -> str:
    weights = [1 / (rank + 1) for rank in range(len(words))]  # Zipf: frequency ~ 1 / rank
    return " ".join(rng.choices(words, weights=weights, k=n_words))


def pretokenize(text: str) -> list[bytes]:
    """GPT-2 style: split before spaces, the space belongs to the following word."""
    parts = text.split(" ")
    return [parts[0].encode()] + [(" " + p).encode() for p in parts[1:]]


def train_bpe(text: str, n_merges: int) -> list[tuple[int, int]]:
    words = Counter(tuple(w) for w in pretokenize(text))  # word (as byte ids) -> count
    merges = []
    for new_id in range(256, 256 + n_merges):
        pairs: Counter = Counter()
        for word, count in words.items():
            for pair in zip(word[:-1], word[1:], strict=True):
                pairs[pair] += count
        if not pairs:
            break
        best = max(pairs, key=lambda p: (pairs[p], p))  # most frequent pair (ties: by id)
        merges.append(best)
        words = Counter({merge_word(w, best, new_id): c for w, c in words.items()})
    return merges


def merge_word(word: tuple, pair: tuple[int, int], new_id: int) -> tuple:
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def encode(text: str, merges: list[tuple[int, int]]) -> list[int]:
    ids = []
    for w in pretokenize(text):
        word = tuple(w)
        for new_id, pair in enumerate(merges, start=256):  # the merges, in learned order
            if len(word) == 1:
                break
            word = merge_word(word, pair, new_id)
        ids.extend(word)
    return ids


def vocab_bytes(merges: list[tuple[int, int]]) -> dict[int, bytes]:
    vocab = {i: bytes([i]) for i in range(256)}
    for new_id, (a, b) in enumerate(merges, start=256):
        vocab[new_id] = vocab[a] + vocab[b]
    return vocab


def decode(ids: list[int], vocab: dict[int, bytes]) -> str:
    return b"".join(vocab[i] for i in ids).decode("utf-8")


def run(ctx: DemoContext) -> DemoResult:
    rng = random.Random(ctx.seed)
    words = make_language(rng, n_stems=ctx.pick(150, 400))
    train_text = sample_text(rng, words, ctx.pick(6000, 40000))
    test_text = sample_text(rng, words, 2000)
    result = DemoResult()

    sizes = ctx.pick([0, 50, 150, 400], [0, 100, 400, 1500])
    merges_all = train_bpe(train_text, sizes[-1])
    rows, bytes_per_token = [], {}
    for n in sizes:
        ids = encode(test_text, merges_all[:n])
        bytes_per_token[n] = len(test_text.encode()) / len(ids)
        rows.append([256 + n, len(ids), f"{bytes_per_token[n]:.2f}"])

    merges = merges_all
    vocab = vocab_bytes(merges)
    # round trip: held-out text, a word never in the corpus, and non-ASCII text
    tricky = test_text[:200] + " zzyzx Ünïcödé naïve café 🙂 数据"
    round_trip = decode(encode(tricky, merges), vocab) == tricky
    # a word-level vocabulary from the training text meets unseen words on held-out text
    train_words = set(train_text.split())
    test_words = test_text.split()
    oov = sum(w not in train_words for w in test_words) / len(test_words)

    # frequent words become one token; rare words are split
    counts = Counter(train_text.split())
    frequent = [w for w, _ in counts.most_common(20)]
    rare = [w for w in words if counts[w] <= 1][:50] or [w for w, _ in counts.most_common()[-50:]]

    def pieces(word: str) -> int:
        return len(encode(" " + word, merges))

    frequent_pieces = sum(map(pieces, frequent)) / len(frequent)
    rare_pieces = sum(map(pieces, rare)) / len(rare)
    stems_and_suffixes = {w[: -len(s)] if s else w for w in words for s in SUFFIXES
                          if s and w.endswith(s)} | set(SUFFIXES)  # fmt: skip
    learned = [vocab[i].decode("utf-8", "replace").strip() for i in range(256, 256 + len(merges))]
    morph_share = sum(t in stems_and_suffixes for t in learned) / len(learned)

    result.tables.append(
        Table(
            f"Encoding {len(test_text.encode())} bytes of held-out text",
            ["vocabulary size", "tokens", "bytes per token"],
            rows,
        )
    )
    example = " ".join(frequent[:2] + rare[:2])
    result.tables.append(
        Table(
            f"Tokens of '{example}' with {len(merges)} merges",
            ["word", "pieces"],
            [
                [
                    w,
                    " | ".join(
                        vocab[i].decode("utf-8", "replace") for i in encode(" " + w, merges)
                    ),
                ]
                for w in example.split()
            ],
        )  # fmt: skip
    )
    result.metrics = {
        "bytes_per_token": {str(256 + n): v for n, v in bytes_per_token.items()},
        "round_trip_exact": round_trip,
        "word_level_oov_rate": oov,
        "pieces_per_frequent_word": frequent_pieces,
        "pieces_per_rare_word": rare_pieces,
        "learned_tokens_equal_to_a_stem_or_suffix": morph_share,
    }
    result.claim(
        "Byte-level BPE encodes any text and decodes it back exactly, including unseen words, "
        "accents and emoji: there is no unknown token (a word-level vocabulary from the same "
        "corpus misses some held-out words).",
        round_trip and oov > 0,
        f"round trip exact: {round_trip}; word-level OOV rate on held-out text {100 * oov:.1f}%",
    )
    bpt = [bytes_per_token[n] for n in sizes]
    result.claim(
        "More merges give shorter sequences: bytes per token rises with the vocabulary size "
        "(>= 2.5x from bytes alone to the largest vocabulary).",
        all(a < b for a, b in zip(bpt[:-1], bpt[1:], strict=True)) and bpt[-1] >= 2.5 * bpt[0],
        " -> ".join(f"{v:.2f}" for v in bpt),
    )
    result.claim(
        "Frequent words end up as single tokens; rare words are split into several pieces.",
        frequent_pieces <= 1.2 and rare_pieces >= 1.8,
        f"mean pieces: 20 most frequent words {frequent_pieces:.2f}, rare words {rare_pieces:.2f}",
    )
    result.notes.append(
        f"{100 * morph_share:.0f}% of the learned tokens are exactly a stem or a suffix of the "
        "made-up language: merges follow frequency, which only partly matches morphology."
    )
    return result
