"""A decoder loop for Llama-architecture models that runs the model's own modules step by step.

Why not `model(...)` with a transformers cache: on a 2-core CPU most of a decoding step went to
copying the cache (DynamicCache appends with torch.cat every step, left-padded batches re-select
every cache tensor when a row leaves), to attention over padding, and to a logits matrix over
every prompt position. Here:

- The prompts of a shard share their longest common token prefix (the few-shot examples). It is
  computed once and kept once; every row attends to it with one matrix product per layer for
  the whole batch (the rows' queries stacked), not one read of a copied prefix per row.
- Each prompt's remaining tokens are computed once (however many samples the prompt has) and
  copied into the row's slot of a preallocated per-row cache; a decoding step writes one key and
  value per row in place.
- Rows occupy slots 0..A-1. A finished row's slot is taken by the last active row (one row's cache
  copied), and free slots are refilled from the waiting rows in shard order: the batch stays full
  while rows wait, and the schedule is a function of the tokens drawn, so it is deterministic.
- The projections of a layer are fused (q|k|v, gate|up) into one matrix product each; the
  module weights become views of the fused tensors, so no memory is duplicated.
- Logits are computed for the last position only.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def supports(model: Any) -> str | None:
    """Why `model` cannot run here (None if it can): a Llama-architecture causal LM whose layers
    have the modules this loop calls."""
    config = model.config
    if getattr(config, "model_type", None) != "llama":
        return f"model_type {getattr(config, 'model_type', None)!r} is not llama"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"hidden_act {config.hidden_act!r}"
    if getattr(config, "pretraining_tp", 1) != 1:
        return "pretraining_tp != 1"
    inner = getattr(model, "model", None)
    needed = ("embed_tokens", "layers", "norm", "rotary_emb")
    if inner is None or not all(hasattr(inner, name) for name in needed):
        return "no model.{embed_tokens, layers, norm, rotary_emb}"
    for layer in inner.layers:
        attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
        if attn is None or mlp is None:
            return "a layer without self_attn/mlp"
        if not all(hasattr(attn, p) for p in ("q_proj", "k_proj", "v_proj", "o_proj")):
            return "attention without q/k/v/o projections"
        if not all(hasattr(mlp, p) for p in ("gate_proj", "up_proj", "down_proj")):
            return "MLP without gate/up/down projections"
        if mlp.gate_proj.bias is not None or mlp.up_proj.bias is not None:
            return "MLP with biases"
    return None


def _fuse(linears: list[torch.nn.Linear]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One weight (and bias) for several linears on the same input; the linears' parameters
    become views of it."""
    weight = torch.cat([lin.weight.data for lin in linears])
    biases = [lin.bias for lin in linears]
    bias = None
    if any(b is not None for b in biases):
        bias = torch.cat(
            [
                b.data if b is not None else torch.zeros(lin.out_features, dtype=weight.dtype)
                for lin, b in zip(linears, biases, strict=True)
            ]
        )
    start = 0
    for lin in linears:
        n = lin.out_features
        lin.weight.data = weight[start : start + n]
        if lin.bias is not None:
            lin.bias.data = bias[start : start + n]
        start += n
    return weight, bias


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class Decoder:
    """Forward passes of a Llama model over a shared prefix, per-prompt suffixes and a
    preallocated per-row (slot) cache."""

    def __init__(self, model: Any) -> None:
        problem = supports(model)
        if problem:
            raise ValueError(f"the decoder loop cannot run this model: {problem}")
        config = model.config
        inner = model.model
        self.model = model
        self.embed = inner.embed_tokens
        self.norm = inner.norm
        self.rotary = inner.rotary_emb
        self.lm_head = model.lm_head
        self.layers = list(inner.layers)
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.groups = self.heads // self.kv_heads
        self.q_size = self.heads * self.head_dim
        self.kv_size = self.kv_heads * self.head_dim
        self.dtype = self.embed.weight.dtype
        self.scale = float(getattr(self.layers[0].self_attn, "scaling", self.head_dim**-0.5))
        self.qkv = []
        self.gate_up = []
        for layer in self.layers:
            attn, mlp = layer.self_attn, layer.mlp
            self.qkv.append(_fuse([attn.q_proj, attn.k_proj, attn.v_proj]))
            self.gate_up.append(_fuse([mlp.gate_proj, mlp.up_proj])[0])
        self.intermediate = self.gate_up[0].shape[0] // 2

    # -- pieces ----------------------------------------------------------------------------------
    def _rope(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin for positions [A, T] -> [A, 1, T, head_dim]."""
        probe = torch.empty(0, dtype=self.dtype)
        cos, sin = self.rotary(probe, positions)
        return cos.unsqueeze(1), sin.unsqueeze(1)

    def _project(self, i: int, x: torch.Tensor, cos, sin):
        """q [A, H, T, d], k, v [A, kvH, T, d] of layer i for hidden states x [A, T, D]."""
        layer = self.layers[i]
        h = layer.input_layernorm(x)
        weight, bias = self.qkv[i]
        qkv = F.linear(h, weight, bias)
        a, t = x.shape[0], x.shape[1]
        q = qkv[..., : self.q_size].view(a, t, self.heads, self.head_dim).transpose(1, 2)
        k = qkv[..., self.q_size : self.q_size + self.kv_size]
        k = k.view(a, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = qkv[..., self.q_size + self.kv_size :]
        v = v.view(a, t, self.kv_heads, self.head_dim).transpose(1, 2)
        return _rotate(q, cos, sin), _rotate(k, cos, sin), v

    def _finish_layer(self, i: int, x: torch.Tensor, attn_out: torch.Tensor) -> torch.Tensor:
        layer = self.layers[i]
        x = x + layer.self_attn.o_proj(attn_out)
        h = layer.post_attention_layernorm(x)
        gate_up = F.linear(h, self.gate_up[i])
        act = F.silu(gate_up[..., : self.intermediate]) * gate_up[..., self.intermediate :]
        return x + layer.mlp.down_proj(act)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.norm(x)).float()

    # -- prefill ---------------------------------------------------------------------------------
    def prefill(
        self, tokens: list[int], prefix: list[tuple[torch.Tensor, torch.Tensor]] | None
    ) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
        """Run `tokens` (one sequence) after `prefix` (per layer (keys, values) [kvH, P, d], or
        None); returns their own per-layer (keys, values) [kvH, T, d] and the last logits [V]."""
        start = prefix[0][0].shape[1] if prefix else 0
        t = len(tokens)
        ids = torch.tensor([tokens], dtype=torch.long)
        positions = torch.arange(start, start + t).unsqueeze(0)
        cos, sin = self._rope(positions)
        x = self.embed(ids)
        mask = None
        if start:
            # every prefix position is visible; the new tokens causally
            mask = torch.ones((t, start + t), dtype=torch.bool).tril(start)
        own = []
        for i in range(len(self.layers)):
            q, k, v = self._project(i, x, cos, sin)
            own.append((k[0], v[0]))
            if start:
                keys = torch.cat([prefix[i][0].unsqueeze(0), k], dim=2)
                values = torch.cat([prefix[i][1].unsqueeze(0), v], dim=2)
            else:
                keys, values = k, v
            out = F.scaled_dot_product_attention(
                q,
                keys,
                values,
                attn_mask=mask,
                is_causal=not start and t > 1,
                scale=self.scale,
                enable_gqa=self.groups > 1,
            )
            x = self._finish_layer(i, x, out.transpose(1, 2).reshape(1, t, self.q_size))
        return own, self._logits(x[:, -1])[0]

    # -- decoding --------------------------------------------------------------------------------
    def new_cache(self, slots: int, capacity: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        shape = (slots, self.kv_heads, capacity, self.head_dim)
        return [
            (torch.zeros(shape, dtype=self.dtype), torch.zeros(shape, dtype=self.dtype))
            for _ in self.layers
        ]

    def step(
        self,
        tokens: torch.Tensor,
        lengths: torch.Tensor,
        prefix: list[tuple[torch.Tensor, torch.Tensor]] | None,
        cache: list[tuple[torch.Tensor, torch.Tensor]],
    ) -> torch.Tensor:
        """One token for each of the rows in slots 0..A-1: `tokens` [A], `lengths` [A] the rows'
        cached tokens beyond the prefix (the new token goes there). Returns logits [A, V]."""
        a = tokens.shape[0]
        p = prefix[0][0].shape[1] if prefix else 0
        width = int(lengths.max()) + 1
        rows = torch.arange(a)
        cos, sin = self._rope((lengths + p).unsqueeze(1))
        visible = torch.arange(width).unsqueeze(0) <= lengths.unsqueeze(1)  # [A, width]
        hidden = torch.zeros((), dtype=torch.float32)
        blocked = torch.full((), float("-inf"), dtype=torch.float32)
        bias = torch.where(visible, hidden, blocked).view(a, 1, 1, width)
        kvh, g, d = self.kv_heads, self.groups, self.head_dim
        x = self.embed(tokens.unsqueeze(1))  # [A, 1, D]
        for i in range(len(self.layers)):
            q, k, v = self._project(i, x, cos, sin)
            keys, values = cache[i]
            keys[rows, :, lengths] = k[:, :, 0]
            values[rows, :, lengths] = v[:, :, 0]
            qg = q.view(a, kvh, g, d)  # head h uses key/value head h // g
            own_k, own_v = keys[:a, :, :width], values[:a, :, :width]
            own = torch.matmul(qg, own_k.transpose(-1, -2)).float() * self.scale + bias
            if p:
                pk, pv = prefix[i]
                shared_q = qg.permute(1, 0, 2, 3).reshape(kvh, a * g, d)
                shared = torch.matmul(shared_q, pk.transpose(-1, -2)).float() * self.scale
                shared = shared.view(kvh, a, g, p).permute(1, 0, 2, 3)
                probs = torch.softmax(torch.cat([shared, own], dim=-1), dim=-1).to(self.dtype)
                own_p = probs[..., p:]
                shared_p = probs[..., :p].permute(1, 0, 2, 3).reshape(kvh, a * g, p)
                out = torch.matmul(own_p, own_v)
                out = out + torch.matmul(shared_p, pv).view(kvh, a, g, d).permute(1, 0, 2, 3)
            else:
                out = torch.matmul(torch.softmax(own, dim=-1).to(self.dtype), own_v)
            x = self._finish_layer(i, x, out.reshape(a, 1, self.q_size))
        return self._logits(x[:, 0])

    @staticmethod
    def move(cache: list[tuple[torch.Tensor, torch.Tensor]], src: int, dst: int, n: int) -> None:
        """Copy the first n cached positions of slot src into slot dst."""
        for keys, values in cache:
            keys[dst, :, :n] = keys[src, :, :n]
            values[dst, :, :n] = values[src, :, :n]

    @staticmethod
    def load(
        cache: list[tuple[torch.Tensor, torch.Tensor]],
        slot: int,
        own: list[tuple[torch.Tensor, torch.Tensor]],
    ) -> None:
        """Put a prompt's own keys/values (per layer [kvH, T, d]) into a slot."""
        for (keys, values), (k, v) in zip(cache, own, strict=True):
            t = k.shape[1]
            keys[slot, :, :t] = k
            values[slot, :, :t] = v
