"""Build tiny, fully offline Hugging Face models: a byte-level BPE tokenizer trained on the given text,
a ChatML chat template (pad distinct from eos), a Llama-style causal LM and a sequence-classification
(reward) head.

Used by the test fixtures (built once per test session) and by ``samples/models/build.py`` (the embedded
demonstration models). Llama, not Qwen2: with transformers 5.x AutoTokenizer replaces the saved tokenizer
of a ``qwen2`` model with Qwen2's own pre-tokenizer, which changes the token ids.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path

# `{% generation %}` marks the assistant tokens so TRL's assistant_only_loss can build its mask.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{% else %}{{ message['content'] + '<|im_end|>' }}{% endif %}"
    "{{ '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]


def build_tokenizer(texts: Iterable[str], out_dir: str | Path, vocab_size: int = 2048):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        unk_token=None,
        additional_special_tokens=["<|im_start|>", "<|endoftext|>"],
    )
    hf.chat_template = CHATML_TEMPLATE
    hf.model_max_length = 512
    hf.save_pretrained(str(out_dir))
    return hf


def _llama_config(tokenizer, hidden: int, layers: int, heads: int, kv_heads: int, max_pos: int, **extra):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_pos,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        **extra,
    )


def build_causal_lm(
    tokenizer_dir: str | Path,
    out_dir: str | Path,
    *,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    max_pos: int = 512,
    seed: int = 0,
):
    """A randomly initialised Llama-style causal LM saved with its tokenizer (safetensors)."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    model = LlamaForCausalLM(_llama_config(tokenizer, hidden, layers, heads, kv_heads, max_pos))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    return model


def build_reward_model(
    tokenizer_dir: str | Path,
    out_dir: str | Path,
    *,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    max_pos: int = 512,
    seed: int = 0,
):
    """A randomly initialised Llama sequence-classification model with one output (a reward head)."""
    import torch
    from transformers import AutoTokenizer, LlamaForSequenceClassification

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    config = _llama_config(tokenizer, hidden, layers, heads, kv_heads, max_pos, num_labels=1)
    model = LlamaForSequenceClassification(config)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    return model


def default_corpus(n_lines: int = 1500, seed: int = 0) -> list[str]:
    """Mixed Chinese/English/code text for training a tiny tokenizer without any download."""
    rng = random.Random(seed)
    zh = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严"
    en_words = (
        "the cluster node pod service deploy kubernetes container image restart log error timeout "
        "memory cpu disk network config file user admin check status version update install run "
        "what how why when where which is are can should does do my your to of in on for with and or"
    ).split()
    lines: list[str] = []
    for i in range(n_lines):
        if i % 3 == 0:
            lines.append("".join(rng.choice(zh) for _ in range(rng.randint(8, 40))) + "。")
        elif i % 3 == 1:
            lines.append(" ".join(rng.choice(en_words) for _ in range(rng.randint(5, 20))).capitalize() + ".")
        else:
            a, b = rng.randint(0, 99), rng.randint(0, 99)
            lines.append(f"def f{i}(x):\n    return x * {a} + {b}  # kubectl get pods -n ns{a}")
    return lines
