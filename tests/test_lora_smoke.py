"""The LoRA recipe end to end on a tiny model made here (issue #13 part 5): ``make lora-smoke``.

Needs the ``finetune`` extra (torch + peft + transformers, several GB: not in the default dev install);
without it the test is skipped with the reason. No downloads: the model is a 2-layer Llama with random
weights and a character-level tokenizer trained on the examples' own text.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine

from kefu.audit import Keyring
from kefu.dialog.orchestrator import citation
from kefu.kb.types import Chunk, Hit
from kefu.learning.finetune import collect
from kefu.storage.engine import make_engine
from kefu.storage.migrate import migrate
from kefu.storage.ratings import SqlRatingStore
from kefu.storage.sql import SqlConversationStore

torch = pytest.importorskip(
    "torch", reason="torch not installed: run `make lora-smoke` (installs .[finetune])"
)
peft = pytest.importorskip("peft", reason="peft not installed: run `make lora-smoke` (installs .[finetune])")
transformers = pytest.importorskip("transformers", reason="transformers not installed: run `make lora-smoke`")

# peft 0.21 calls a transformers 5 method deprecated in favour of is_activation_checkpointing
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")

SCRIPT = Path(__file__).parent.parent / "scripts" / "lora_train.py"
QA = [
    ("多久发货？", "付款后 48 小时内发货 [1]。", "付款后 48 小时内发货。"),
    ("可以退货吗", "签收后 7 天内可无理由退货 [1]。", "签收后 7 天内可无理由退货。"),
    ("运费谁出", "质量问题的退货运费由我们承担 [1]。", "质量问题退货，运费由商家承担。"),
    ("怎么开发票", "下单时填写发票抬头即可 [1]。", "下单时在结算页填写发票抬头。"),
]


def export(tmp_path: Path, keyring: Keyring) -> Path:
    """train.jsonl written by the real export from rated answers in a SQLite database."""
    engine: Engine = make_engine(f"sqlite:///{tmp_path / 'kefu.db'}")
    migrate(engine, keyring=keyring)
    store, ratings = SqlConversationStore(engine, keyring), SqlRatingStore(engine)
    for n, (question, answer, source) in enumerate(QA):
        chunk = Chunk(f"faq:{n}", "faq/faq.json", "faq", question, "", source, "faq/faq.json")
        cid = store.create_conversation(channel="web").id
        store.add_message(cid, "user", question)
        message = store.add_message(
            cid, "assistant", answer, answer_kind="faq", citations=[citation(1, Hit(chunk, 1, 1, 1), "v1")]
        )
        ratings.add(cid, message.id, "thumbs", 1)
    result = collect(engine, shop="测试小铺", validation=0.0)
    engine.dispose()
    assert len(result.train) == len(QA)
    train, _ = result.write(tmp_path / "ft")
    return train


def tiny_model(path: Path, data: Path) -> None:
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

    text = data.read_text("utf-8") + "<|system|><|user|><|assistant|>\n"
    specials = ["<unk>", "<pad>", "<s>", "</s>"]
    vocab = {token: i for i, token in enumerate(specials + sorted(set(text)))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )
    tokenizer.save_pretrained(path)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        pad_token_id=1,
        bos_token_id=2,
        eos_token_id=3,
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(path)


def test_lora_recipe_trains_an_adapter_that_loads(tmp_path: Path, keyring: Keyring) -> None:
    train = export(tmp_path, keyring)
    base = tmp_path / "base"
    tiny_model(base, train)
    out = tmp_path / "adapter"
    files = ["--model", str(base), "--data", str(train), "--validation", str(train), "--out", str(out)]
    options = ["--steps", "30", "--batch-size", "4", "--lr", "1e-2", "--rank", "8", "--dropout", "0"]
    run = subprocess.run(
        [sys.executable, str(SCRIPT), *files, *options],
        capture_output=True,
        text=True,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "CUDA_VISIBLE_DEVICES": ""},
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    log = json.loads((out / "train_log.json").read_text("utf-8"))
    losses = log["loss"]
    assert len(losses) == 30
    # the loss falls (a random 2-layer model with frozen embeddings and head: ~5.1 -> ~4.6 in 30 steps)
    assert sum(losses[-5:]) / 5 < 0.95 * sum(losses[:5]) / 5, losses
    assert log["validation_after"] < log["validation_before"], log

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base)
    probe = torch.tensor([[2, 5, 6, 7]])
    before = model(probe).logits
    adapted = PeftModel.from_pretrained(model, out)
    after = adapted(probe).logits
    assert not torch.allclose(before, after)  # the trained adapter changes what the model says
    merged = adapted.merge_and_unload()  # the recipe's merge step for GGUF conversion
    assert torch.allclose(merged(probe).logits, after, atol=1e-4)
