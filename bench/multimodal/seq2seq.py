"""OFA-style sequence-to-sequence on an open_clip CoCa: the instruction and the answer share CoCa's text decoder.

OFA feeds the instruction to its encoder and writes the answer with its decoder. CoCa has no text encoder, so the
instruction is the decoder's prefix: `<start> instruction <answer> target <end>`, the loss taken on the target
and end tokens only (the instruction is given, never predicted). Image tokens come from CoCa's attention pooler,
as in captioning.

- `sequence_loss`: teacher-forced cross-entropy on the target tokens.
- `greedy_decode` / `beam_decode`: free generation after the prefix; `DecodeSettings` holds what is recorded.
- `candidate_scores`: log-likelihood of each fixed answer (entailment's yes / no / maybe): exact constrained
  decoding over the candidates.

Training methods (fine-tuning, prompts, adapters, LoRA) live with the strategies (`strategies/seq2seq/`, behind
`bench.multimodal.methods`); callers run these functions inside a method's `active()` context.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from bench.models.backbones import GLYPH_MEAN, GLYPH_STD, CocaBackbone, init_coca_decoder
from bench.multimodal.vocab import SceneTokenizer

__all__ = ["DecodeSettings", "beam_decode", "candidate_log_likelihoods", "candidate_scores", "encode_examples",
           "greedy_decode", "scene_coca", "sequence_loss", "sequence_losses"]


def scene_coca(tokenizer: SceneTokenizer, image_size: int = 64, patch_size: int = 16, width: int = 64,
               layers: int = 2, seed: int = 0) -> CocaBackbone:
    """A randomly initialised CoCa for the scene tasks: `image_size` pixels, the tokenizer's vocabulary and
    context (the embedded `coca_glyph_tiny` has neither; see bench.multimodal.vocab)."""
    from open_clip.coca_model import CoCa

    torch.manual_seed(seed)
    text = {"context_length": tokenizer.context_length, "vocab_size": tokenizer.vocab_size, "width": width,
            "heads": 2, "layers": layers}
    model = CoCa(embed_dim=width,
                 vision_cfg={"image_size": image_size, "layers": 2 * layers, "width": width, "patch_size": patch_size,
                             "head_width": 32, "mlp_ratio": 4.0, "attentional_pool": True, "attn_pooler_heads": 2,
                             "attn_pooler_queries": 16, "output_tokens": True},
                 text_cfg={**text, "embed_cls": True, "output_tokens": True},
                 multimodal_cfg={**text, "attn_pooler_heads": 2})
    init_coca_decoder(model.text_decoder)
    return CocaBackbone(model, tokenizer, GLYPH_MEAN, GLYPH_STD, "scene_coca")


def encode_examples(tokenizer: SceneTokenizer, instructions: list[str], targets: list[str]
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids `(B, L)` of `<start> instruction <answer> target <end>` (right-padded) and the mask `(B, L - 1)` of
    the positions whose next token is a target or end token. An instruction too long for the context is refused
    rather than cut, since a cut instruction changes the task."""
    rows, masks = [], []
    for instruction, target in zip(instructions, targets, strict=True):
        prefix = tokenizer.prefix(instruction)
        answer = tokenizer.encode(target) + [tokenizer.eot_token_id]
        if len(prefix) + len(answer) > tokenizer.context_length:
            raise ValueError(f"{len(prefix) + len(answer)} tokens exceed the context of {tokenizer.context_length}: "
                             f"{instruction!r} -> {target!r}")
        rows.append(prefix + answer)
        masks.append([0] * (len(prefix) - 1) + [1] * len(answer))
    length = max(map(len, rows))
    ids = torch.zeros(len(rows), length, dtype=torch.long)
    mask = torch.zeros(len(rows), length - 1)
    for r, (row, m) in enumerate(zip(rows, masks)):
        ids[r, :len(row)] = torch.tensor(row)
        mask[r, :len(m)] = torch.tensor(m, dtype=torch.float32)
    return ids, mask


def sequence_loss(backbone: CocaBackbone, pixels: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor
                  ) -> torch.Tensor:
    """Mean cross-entropy over the target tokens (OFA's generative loss)."""
    return sequence_losses(backbone, pixels, ids, mask).sum() / mask.sum()


def sequence_losses(backbone: CocaBackbone, pixels: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor
                    ) -> torch.Tensor:
    """`(B,)` summed cross-entropy over each example's target tokens (what an attack on one image ascends)."""
    logits = backbone.caption_logits(backbone.image_tokens(pixels), ids)
    per_token = F.cross_entropy(logits.transpose(1, 2).float(), ids[:, 1:], reduction="none")
    return (per_token * mask).sum(dim=1)


@dataclass(frozen=True)
class DecodeSettings:
    """How answers are generated; recorded beside every generated metric. `beam_size` 1 is greedy decoding.
    `length_penalty` divides a finished beam's log-probability by its length ** penalty (0: plain sum)."""

    beam_size: int = 1
    max_new_tokens: int = 24
    length_penalty: float = 0.0

    def __post_init__(self) -> None:
        if self.beam_size < 1 or self.max_new_tokens < 1:
            raise ValueError(f"beam_size and max_new_tokens must be >= 1, got {self.beam_size}, {self.max_new_tokens}")

    def record(self) -> dict:
        return {"decoding": "greedy" if self.beam_size == 1 else "beam", **asdict(self)}


def _next_logp(backbone: CocaBackbone, image_tokens: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """log p(next token) `(B, vocab)` after each row of `ids`; start, pad and separator never come next."""
    logits = backbone.model.text_decoder(image_tokens, backbone.text_tokens(ids))[:, -1].float()
    tok = backbone.tokenizer
    logits[:, [tok.pad_id, tok.sot_token_id, tok.answer_id]] = float("-inf")
    return logits.log_softmax(dim=-1)


@torch.no_grad()
def greedy_decode(backbone: CocaBackbone, pixels: torch.Tensor, instruction: str, max_new_tokens: int = 24) -> str:
    """The answer written greedily for one image (`(1, 3, H, W)`) and instruction."""
    return beam_decode(backbone, pixels, instruction, DecodeSettings(1, max_new_tokens))


@torch.no_grad()
def beam_decode(backbone: CocaBackbone, pixels: torch.Tensor, instruction: str, settings: DecodeSettings) -> str:
    """The best answer under beam search (greedy when `beam_size` is 1) for one image and instruction.
    Hand-written: open_clip's CoCa.generate needs transformers' beam scorer and cannot start from a prefix."""
    tok = backbone.tokenizer
    image_tokens = backbone.image_tokens(pixels)
    prefix = tok.prefix(instruction)
    room = min(settings.max_new_tokens, tok.context_length - len(prefix))
    if room < 1:
        raise ValueError(f"instruction {instruction!r} leaves no room to answer in a context of {tok.context_length}")
    beams = [(0.0, prefix)]
    finished: list[tuple[float, list[int]]] = []
    for _ in range(room):
        ids = torch.tensor([b[1] for b in beams], device=pixels.device)
        logp = _next_logp(backbone, image_tokens.expand(len(beams), -1, -1), ids)
        top = torch.topk(logp, settings.beam_size, dim=-1)
        candidates = sorted(((score + float(v), seq + [int(i)]) for (score, seq), vals, idx in
                             zip(beams, top.values, top.indices) for v, i in zip(vals, idx)),
                            key=lambda c: c[0], reverse=True)
        beams = []
        for score, seq in candidates:
            if seq[-1] == tok.eot_token_id:
                finished.append((score / max(1, len(seq) - len(prefix)) ** settings.length_penalty, seq))
            else:
                beams.append((score, seq))
            if len(beams) == settings.beam_size:
                break
        if not beams or len(finished) >= settings.beam_size:
            break
    pool = finished or [(s / max(1, len(q) - len(prefix)) ** settings.length_penalty, q) for s, q in beams]
    best = max(pool, key=lambda c: c[0])[1]
    return tok.decode(best[len(prefix):])


@torch.no_grad()
def candidate_scores(backbone: CocaBackbone, pixels: torch.Tensor, instructions: list[str], candidates: list[str]
                     ) -> torch.Tensor:
    """`(B, C)` log-likelihood of each candidate answer (its tokens and the end token) after each instruction."""
    return candidate_log_likelihoods(backbone, pixels, instructions, candidates)


def candidate_log_likelihoods(backbone: CocaBackbone, pixels: torch.Tensor, instructions: list[str],
                              candidates: list[str]) -> torch.Tensor:
    """`candidate_scores` with gradients (the candidate-scoring loss that attacks on entailment ascend)."""
    columns = []
    for cand in candidates:
        ids, mask = encode_examples(backbone.tokenizer, instructions, [cand] * len(instructions))
        ids = ids.to(pixels.device)
        logits = backbone.caption_logits(backbone.image_tokens(pixels), ids).float().log_softmax(dim=-1)
        token_logp = logits.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        columns.append((token_logp * mask.to(pixels.device)).sum(dim=1))
    return torch.stack(columns, dim=1)
