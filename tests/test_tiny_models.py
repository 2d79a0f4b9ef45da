import torch


def test_tiny_models_reload_offline(tiny_models):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_models["lm"])
    assert tok.pad_token_id != tok.eos_token_id
    text = tok.apply_chat_template(
        [
            {"role": "user", "content": "集群 pod 重启了怎么办?"},
            {"role": "assistant", "content": "check logs"},
        ],
        tokenize=False,
    )
    assert "<|im_start|>assistant" in text
    ids = tok("kubectl get pods 你好", return_tensors="pt")
    lm = AutoModelForCausalLM.from_pretrained(tiny_models["lm"])
    assert lm(**ids).logits.shape[-1] == len(tok)
    rm = AutoModelForSequenceClassification.from_pretrained(tiny_models["reward"])
    with torch.no_grad():
        assert rm(**ids).logits.shape == (1, 1)
