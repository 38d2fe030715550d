"""A tiny Gemma 2 (random weights) and a tiny tokenizer with Gemma's special tokens and chat template.

Used by tests and by local smoke runs: nothing here downloads anything. The tokenizer is a byte-level BPE
(exact round trip of any text) trained on the given texts, or on the built-in word list, with a vocabulary of a
few hundred entries. The special tokens sit at Gemma's ids: ``<pad>`` 0, ``<eos>`` 1, ``<bos>`` 2, ``<unk>`` 3,
then ``<start_of_turn>`` 4 and ``<end_of_turn>`` 5.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path

from .templates import GEMMA2_CHAT_TEMPLATE

PAD, EOS, BOS, UNK = "<pad>", "<eos>", "<bos>", "<unk>"
START_OF_TURN, END_OF_TURN = "<start_of_turn>", "<end_of_turn>"
SPECIAL_TOKENS = [PAD, EOS, BOS, UNK, START_OF_TURN, END_OF_TURN]

TINY_VOCAB_SIZE = 384

# Countries and capitals, colours, digits, small words: the learnable data sets below use them, and the
# tokenizer is trained on them when no texts are given.
CAPITALS = {
    "france": "paris", "spain": "madrid", "italy": "rome", "germany": "berlin", "japan": "tokyo",
    "egypt": "cairo", "peru": "lima", "kenya": "nairobi", "chile": "santiago", "norway": "oslo",
    "poland": "warsaw", "greece": "athens", "canada": "ottawa", "india": "delhi", "cuba": "havana",
    "ireland": "dublin",
}
WORDS = [
    "red", "green", "blue", "black", "white", "cat", "dog", "bird", "fish", "tree", "sun", "moon", "star",
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "zero", "big", "small", "hot",
    "cold", "up", "down", "left", "right", "yes", "no",
]
OPPOSITES = {
    "big": "small", "small": "big", "hot": "cold", "cold": "hot", "up": "down", "down": "up",
    "left": "right", "right": "left", "yes": "no", "no": "yes", "black": "white", "white": "black",
}
_PROMPT_WORDS = [
    "what", "is", "the", "capital", "of", "reverse", "opposite", "repeat", "answer", "question", "you",
    "are", "a", "helpful", "assistant", "short", "answers", "only", "and", "to", "in", "say", "word",
]
BUILTIN_TEXTS = [
    " ".join(_PROMPT_WORDS),
    " ".join(WORDS),
    " ".join(f"{k} {v}" for k, v in CAPITALS.items()),
    "What is the capital of France? Paris. Reverse: a b c -> c b a.\nThe quick brown fox jumps over the lazy dog.",
    "0 1 2 3 4 5 6 7 8 9 , . ? ! : ; - ' \" ( ) user model system",
]


def build_tiny_tokenizer(texts: Iterable[str] | None = None, vocab_size: int = TINY_VOCAB_SIZE,
                         turn_markers: tuple[str, str] = (START_OF_TURN, END_OF_TURN),
                         chat_template: str = GEMMA2_CHAT_TEMPLATE):
    """A byte-level BPE tokenizer with Gemma's special tokens, ``<bos>`` prepended, right padding and Gemma 2's
    chat template (or ``turn_markers`` at ids 4 and 5 and ``chat_template``: Gemma 4's ``<|turn>``, ``<turn|>``).
    Trained on ``texts`` plus the built-in word list (deterministic)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = list(BUILTIN_TEXTS)
    if texts is not None:
        corpus.extend(t for t in texts if t)
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=max(vocab_size, len(SPECIAL_TOKENS) + 256),
        min_frequency=1,
        special_tokens=[*SPECIAL_TOKENS[:4], *turn_markers],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    for i, special in enumerate([*SPECIAL_TOKENS[:4], *turn_markers]):
        assert tok.token_to_id(special) == i, (special, tok.token_to_id(special))

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        eos_token=EOS,
        bos_token=BOS,
        unk_token=UNK,
        additional_special_tokens=list(turn_markers),
        add_bos_token=True,
        add_eos_token=False,
        padding_side="right",
        truncation_side="right",
        model_max_length=512,
        chat_template=chat_template,
        clean_up_tokenization_spaces=False,
    )


def tiny_gemma2_config(vocab_size: int, **overrides):
    """The tiny ``Gemma2Config``; ``overrides`` replace any field."""
    from transformers import Gemma2Config

    values = {
        "vocab_size": vocab_size,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "query_pre_attn_scalar": 16,
        "max_position_embeddings": 512,
        "sliding_window": 64,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "bos_token_id": 2,
        "tie_word_embeddings": True,
        "attn_implementation": "eager",
    }
    values.update(overrides)
    return Gemma2Config(**values)


def build_tiny_gemma2(vocab_size: int, seed: int = 0, **overrides):
    """A randomly initialised tiny ``Gemma2ForCausalLM`` (about 70k parameters plus embeddings)."""
    import torch
    from transformers import Gemma2ForCausalLM

    config = tiny_gemma2_config(vocab_size, **overrides)
    torch.manual_seed(seed)
    model = Gemma2ForCausalLM(config)
    model.eval()
    return model


def save_tiny_model(dir: str | Path, texts: Iterable[str] | None = None, seed: int = 0) -> Path:
    """Write a tiny model and its tokenizer to ``dir`` (``save_pretrained``); returns the folder."""
    path = Path(dir)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(texts)
    model = build_tiny_gemma2(len(tokenizer), seed=seed)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


# ---------------------------------------------------------------- learnable data sets

DATASET_KINDS = ("messages", "prompt-completion", "text")


def _task(rng: random.Random) -> tuple[str, str]:
    """One (question, answer) pair from a deterministic mapping; lengths vary."""
    kind = rng.randrange(4)
    if kind == 0:
        country = rng.choice(sorted(CAPITALS))
        return f"What is the capital of {country}?", CAPITALS[country]
    if kind == 1:
        words = [rng.choice(WORDS) for _ in range(rng.randint(1, 8))]
        return "reverse: " + " ".join(words), " ".join(reversed(words))
    if kind == 2:
        word = rng.choice(sorted(OPPOSITES))
        return f"opposite of {word}", OPPOSITES[word]
    words = [rng.choice(WORDS) for _ in range(rng.randint(1, 4))]
    times = rng.randint(1, 3)
    return f"repeat {times}: " + " ".join(words), " ".join(" ".join(words) for _ in range(times))


def make_dataset_rows(kind: str, n: int, seed: int = 0) -> list[dict]:
    """``n`` rows of a small learnable data set in one format: ``messages`` (some with a system message,
    some with two exchanges), ``prompt-completion`` or ``text``. Deterministic for a seed."""
    if kind not in DATASET_KINDS:
        raise ValueError(f"unknown dataset kind {kind!r}; expected one of {DATASET_KINDS}")
    rng = random.Random(seed)
    rows: list[dict] = []
    for i in range(n):
        question, answer = _task(rng)
        if kind == "prompt-completion":
            rows.append({"prompt": question, "completion": answer})
        elif kind == "text":
            rows.append({"text": f"Q: {question}\nA: {answer}"})
        else:
            messages = []
            if i % 3 == 1:
                messages.append({"role": "system", "content": "You are a helpful assistant. Short answers only."})
            messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
            if i % 4 == 2:
                q2, a2 = _task(rng)
                messages += [{"role": "user", "content": q2}, {"role": "assistant", "content": a2}]
            rows.append({"messages": messages})
    return rows


def dataset_texts(rows: Iterable[dict]) -> list[str]:
    """Every string in rows of any format (to train the tiny tokenizer on them)."""
    out: list[str] = []
    for row in rows:
        for key in ("text", "prompt", "completion"):
            if isinstance(row.get(key), str):
                out.append(row[key])
        for message in row.get("messages") or []:
            if isinstance(message, dict) and isinstance(message.get("content"), str):
                out.append(message["content"])
    return out
