#!/usr/bin/env python
"""Train a LoRA adapter on ``kefu export finetune`` output (issue #13 part 5).

    pip install -e '.[finetune]'          # peft + transformers + torch (several GB, see README)
    kefu export finetune --out ft/
    python scripts/lora_train.py --model /models/Qwen2.5-0.5B-Instruct --data ft/train.jsonl \
        --validation ft/validation.jsonl --out adapters/kefu-v1 --steps 200

Any Hugging Face causal LM given by a local path (nothing is downloaded: HF_HUB_OFFLINE is set). Each
example is rendered with the tokenizer's chat template when it has one (so the adapter learns the prompt
format the model is served with), else with a plain ``<|role|>`` template; the loss is on the assistant's
tokens only. A plain loop with AdamW — no Trainer — so the only moving parts are torch, transformers and
peft. Writes the adapter (``adapter_config.json`` + ``adapter_model.safetensors``) and ``train_log.json``
(loss per step, validation loss before and after) to ``--out``. Merging and GGUF conversion: README,
"Fine-tuning data and LoRA".
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

IGNORE = -100


def load_examples(path: Path) -> list[list[dict[str, str]]]:
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            messages = json.loads(line)["messages"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            sys.exit(
                f"{path}:{number}: not a chat fine-tuning line ({error}); write it with kefu export finetune"
            )
        if not messages or messages[-1].get("role") != "assistant":
            sys.exit(
                f"{path}:{number}: the last message must be the assistant's answer (the training target)"
            )
        examples.append(messages)
    if not examples:
        sys.exit(f"{path} has no examples; run kefu export finetune after some answers were rated")
    return examples


def render(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[str, str]:
    """(prompt, target): the target is the assistant's answer plus the end-of-sequence token."""
    eos = tokenizer.eos_token or ""
    if getattr(tokenizer, "chat_template", None):
        prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
        return str(prompt), messages[-1]["content"] + eos
    prompt = "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages[:-1]) + "<|assistant|>\n"
    return prompt, messages[-1]["content"] + eos


def encode(tokenizer: Any, messages: list[dict[str, str]], max_length: int) -> tuple[list[int], list[int]]:
    """Token ids and labels (prompt tokens masked); an over-long prompt loses its start, not the target."""
    prompt, target = render(tokenizer, messages)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    target_ids = tokenizer(target, add_special_tokens=False)["input_ids"][:max_length]
    prompt_ids = prompt_ids[max(0, len(prompt_ids) + len(target_ids) - max_length) :]
    return prompt_ids + target_ids, [IGNORE] * len(prompt_ids) + target_ids


def batches(encoded: list[tuple[list[int], list[int]]], size: int, pad: int) -> list[dict[str, Any]]:
    import torch

    out = []
    for start in range(0, len(encoded), size):
        chunk = encoded[start : start + size]
        width = max(len(ids) for ids, _ in chunk)
        ids = [i + [pad] * (width - len(i)) for i, _ in chunk]
        labels = [lab + [IGNORE] * (width - len(lab)) for _, lab in chunk]
        mask = [[1] * len(i) + [0] * (width - len(i)) for i, _ in chunk]
        out.append(
            {
                "input_ids": torch.tensor(ids),
                "labels": torch.tensor(labels),
                "attention_mask": torch.tensor(mask),
            }
        )
    return out


def mean_loss(model: Any, data: list[dict[str, Any]]) -> float:
    import torch

    if not data:
        return math.nan
    model.eval()
    with torch.no_grad():
        losses = [float(model(**batch).loss) for batch in data]
    model.train()
    return sum(losses) / len(losses)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, type=Path, help="local path of a Hugging Face causal LM")
    parser.add_argument("--data", required=True, type=Path, help="train.jsonl from kefu export finetune")
    parser.add_argument("--validation", type=Path, help="validation.jsonl (loss reported before and after)")
    parser.add_argument("--out", required=True, type=Path, help="directory for the adapter")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--alpha", type=int, default=32)
    parser.add_argument("--dropout", type=float, default=0.05)
    parser.add_argument("--target-modules", default="all-linear", help="comma-separated names or all-linear")
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    try:
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as error:
        sys.exit(f"{error}; install the optional extra first: pip install -e '.[finetune]'")
    if not args.model.is_dir():
        sys.exit(f"--model {args.model} is not a directory; give the local path of a Hugging Face model")

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        sys.exit(f"the tokenizer of {args.model} has neither a pad nor an eos token; add one to its config")
    train = [encode(tokenizer, m, args.max_length) for m in load_examples(args.data)]
    valid = (
        [encode(tokenizer, m, args.max_length) for m in load_examples(args.validation)]
        if args.validation
        else []
    )

    model = AutoModelForCausalLM.from_pretrained(args.model)
    modules: str | list[str] = args.target_modules
    if modules != "all-linear":
        modules = [m.strip() for m in args.target_modules.split(",") if m.strip()]
    config = LoraConfig(
        r=args.rank,
        lora_alpha=args.alpha,
        lora_dropout=args.dropout,
        target_modules=modules,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, config)
    model.print_trainable_parameters()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    valid_batches = batches(valid, args.batch_size, pad)
    log: dict[str, Any] = {"validation_before": mean_loss(model, valid_batches), "loss": []}
    model.train()
    order: list[tuple[list[int], list[int]]] = []
    for step in range(1, args.steps + 1):
        if len(order) < args.batch_size:
            shuffled = train[:]
            random.shuffle(shuffled)
            order.extend(shuffled * max(1, math.ceil(args.batch_size / len(shuffled))))
        batch, order = batches(order[: args.batch_size], args.batch_size, pad)[0], order[args.batch_size :]
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        log["loss"].append(round(float(loss), 5))
        print(f"step {step}/{args.steps} loss {float(loss):.4f}", flush=True)
    log["validation_after"] = mean_loss(model, valid_batches)
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    (args.out / "train_log.json").write_text(json.dumps(log, indent=1), encoding="utf-8")
    print(
        f"adapter written to {args.out} (validation loss {log['validation_before']:.4f} -> "
        f"{log['validation_after']:.4f}); merge it: see README 'Fine-tuning data and LoRA'"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
