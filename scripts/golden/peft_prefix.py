"""Golden values for prefix tuning and P-tuning v2 from Hugging Face PEFT (installed package, no snapshot needed).

    python scripts/golden/peft_prefix.py

PEFT defines both: `PrefixTuningConfig(prefix_projection=True)` is prefix tuning's embedding -> Linear -> Tanh ->
Linear reparameterisation; `prefix_projection=False` is P-tuning v2 (prefixes learned directly). A tiny random
GPT-2 (width 16, 2 heads, 2 layers, no dropout) is wrapped by `get_peft_model`; recorded: the prefix encoder's
weights, the per-layer prefix keys and values PEFT hands the model (`get_prompt`), and, for every layer, the
attention's input and output in a forward pass with the prefixes (GPT-2's causal attention, every prefix key
visible to every position). Nothing is patched.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save_fixture  # noqa: E402

WIDTH, HEADS, LAYERS, VIRTUAL, HIDDEN, TOKENS = 16, 2, 2, 3, 8, 5


def run(projection: bool) -> None:
    import peft
    import transformers
    from peft import PrefixTuningConfig, get_peft_model
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_embd=WIDTH, n_layer=LAYERS, n_head=HEADS, vocab_size=40, n_positions=16, attn_pdrop=0.0,
                        resid_pdrop=0.0, embd_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    model = get_peft_model(GPT2LMHeadModel(config), PrefixTuningConfig(
        task_type="CAUSAL_LM", num_virtual_tokens=VIRTUAL, prefix_projection=projection,
        encoder_hidden_size=HIDDEN)).eval()
    encoder = model.prompt_encoder["default"]
    with torch.no_grad():
        for p in encoder.parameters():  # off the default init, so tanh sees negative pre-activations too
            p.copy_(torch.randn_like(p) * 0.8)
    tensors = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    with torch.no_grad():
        cache = model.get_prompt(batch_size=1)
    for i in range(LAYERS):
        tensors[f"prefix.{i}.keys"] = cache.layers[i].keys[0]  # (heads, virtual, head_dim)
        tensors[f"prefix.{i}.values"] = cache.layers[i].values[0]

    seen: dict[str, torch.Tensor] = {}
    blocks = model.get_base_model().transformer.h
    hooks = []
    for i, block in enumerate(blocks):
        hooks.append(block.attn.register_forward_hook(
            lambda _m, args, out, i=i: seen.update({f"attn.{i}.output": out[0].detach()})))
        hooks.append(block.ln_1.register_forward_hook(
            lambda _m, args, out, i=i: seen.update({f"attn.{i}.input": out.detach()})))
        for name in ("c_attn", "c_proj"):
            conv = getattr(block.attn, name)  # GPT-2's Conv1D: y = x @ weight + bias
            tensors[f"gpt2.{i}.{name}.weight"] = conv.weight
            tensors[f"gpt2.{i}.{name}.bias"] = conv.bias
    ids = torch.randint(0, 40, (1, TOKENS))
    with torch.no_grad():
        model(input_ids=ids)
    for h in hooks:
        h.remove()
    tensors.update(seen)
    name = "peft_prefix_tuning" if projection else "peft_p_tuning_v2"
    save_fixture(name, tensors, {
        "method": "prefix_tuning" if projection else "p_tuning_v2", "repository": "huggingface/peft",
        "version": peft.__version__, "transformers": transformers.__version__,
        "official": "peft.PrefixTuningConfig + PrefixEncoder + PeftModel.get_prompt, on transformers' GPT-2",
        "patches": [],
        "setting": {"width": WIDTH, "heads": HEADS, "layers": LAYERS, "virtual_tokens": VIRTUAL,
                    "encoder_hidden": HIDDEN if projection else None, "tokens": TOKENS,
                    "prefix_projection": projection},
        "follows": "PEFT as is",
    })


def main() -> None:
    run(projection=True)
    run(projection=False)


if __name__ == "__main__":
    main()
