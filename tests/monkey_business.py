"""Test data in the layout of the paper's released samples (ScalingIntelligence/monkey_business),
a tiny tokenizer and a tiny reward model, all written by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from monkeyflow.io import write_jsonl
from monkeyflow.records import Problem

WORDS = [
    "<pad>",
    "<unk>",
    "<eos>",
    *"the answer is so yes no question #### 0 1 2 3 4 5 6 7 8 9".split(),
]


def released_rows(problems: list[Problem], samples: int, rate: float, seed: int = 0) -> list[dict]:
    """One row per problem: `samples` GSM8K-style completions, each correct with chance `rate`
    (wrong ones spread over three wrong answers), labelled by `is_corrects`."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in problems:
        texts, labels = [], []
        for _ in range(samples):
            ok = bool(rng.random() < rate)
            answer = p.reference if ok else str(int(float(p.reference)) + 1 + int(rng.integers(3)))
            texts.append(f"so the answer is {answer}\n#### {answer}")
            labels.append(ok)
        rows.append(
            {
                "question": p.chat[-1]["content"] if p.chat else p.prompt,
                "prompt": p.prompt,
                "gt_answer": p.reference,
                "samples": texts,
                "is_corrects": labels,
                "orig_dset_split": "test",
                "orig_dset_idx": int(p.metadata["row"]),
            }
        )
    return rows


def write_released(folder: Path, config: str, rows: list[dict], split: str = "test") -> Path:
    """`folder/config/split.jsonl`, as a local copy of one config of the released dataset."""
    path = Path(folder) / config / f"{split}.jsonl"
    write_jsonl(path, rows)
    return path


def tiny_tokenizer(path: Path) -> Path:
    """A word-level tokenizer saved with save_pretrained (whitespace split, unknown words -> <unk>)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", unk_token="<unk>", eos_token="<eos>"
    ).save_pretrained(path)
    return Path(path)


def tiny_reward_model(path: Path) -> Path:
    """A randomly initialised 2-layer GPT-2 sequence classifier with one label, and its tokenizer."""
    import torch
    from transformers import GPT2Config, GPT2ForSequenceClassification

    tiny_tokenizer(path)
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(WORDS),
        n_positions=512,
        n_embd=32,
        n_layer=2,
        n_head=2,
        num_labels=1,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=2,
    )
    GPT2ForSequenceClassification(config).eval().save_pretrained(path)
    return Path(path)
