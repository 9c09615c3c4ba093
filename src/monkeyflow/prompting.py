"""Turning a Problem into the token ids a model sees (chat template or plain few-shot text)."""

from __future__ import annotations

from typing import Any

from monkeyflow.records import Problem


def use_chat(tokenizer: Any, chat: bool | None) -> bool:
    """Whether to use the chat form: `chat` if set, else whether the tokenizer has a template."""
    if chat is None:
        return bool(getattr(tokenizer, "chat_template", None))
    return chat


def prompt_token_ids(tokenizer: Any, problem: Problem, chat: bool | None = None) -> list[int]:
    """Token ids of the prompt: the chat messages through the model's chat template (with the
    generation prompt) for instruct models, else the plain few-shot text."""
    if use_chat(tokenizer, chat) and problem.chat:
        text = tokenizer.apply_chat_template(
            problem.chat, add_generation_prompt=True, tokenize=False
        )
        # The template already writes the special tokens (BOS, turn markers).
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return list(tokenizer(problem.prompt, add_special_tokens=True)["input_ids"])
