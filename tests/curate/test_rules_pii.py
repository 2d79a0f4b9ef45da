"""PII: detection with validation, redaction with placeholders, counts, and values never reported."""

from __future__ import annotations

import json

import polars as pl

from curate.records import Record, to_frame
from curate.rules import apply, load_rules, pii


def kinds(text, **kw):
    return [(f.type, text[f.start : f.end]) for f in pii.find(text, **kw)]


def test_checksums():
    assert pii.cn_id_valid("11010519491231002X")
    assert not pii.cn_id_valid("110105194912310021")
    assert pii.luhn_valid("4111111111111111") and not pii.luhn_valid("4111111111111112")


def test_find_every_type():
    text = (
        "邮箱 zhang.san@qq.com，手机 138-1234-5678 或 +86 13912345678，座机 010-62345678；"
        "US +1 415 555 2671；身份证 11010519491231002X；卡号 4111 1111 1111 1111；IP 8.8.8.8；"
        "key sk-proj-A1b2C3d4E5f6G7h8I9j0K1L2M3 and password: hunter2hunter2"
    )
    got = kinds(text)
    assert ("email", "zhang.san@qq.com") in got
    assert ("phone", "138-1234-5678") in got and ("phone", "+86 13912345678") in got
    assert ("phone", "010-62345678") in got and ("phone", "+1 415 555 2671") in got
    assert ("cn_id", "11010519491231002X") in got
    assert ("bank_card", "4111 1111 1111 1111") in got
    assert ("ip", "8.8.8.8") in got
    assert ("secret", "sk-proj-A1b2C3d4E5f6G7h8I9j0K1L2M3") in got and ("secret", "hunter2hunter2") in got


def test_no_false_positives_on_lookalikes():
    text = (
        "身份证 110105194912310021（校验位错）；订单号 4111111111111112；版本 3.6.0.0；"
        "章节 1.2.1.1詹森；内网 192.168.1.1 和 127.0.0.1；api_key = your_api_key_here；更改密码：如果您的密码泄露；"
        "issuer: ops@example.com, admin@corp.example"
    )
    assert kinds(text) == []


def test_ip_in_urls_cidr_ports_and_at_sentence_end_is_found():
    def ips(text, **kw):
        return [v for t, v in kinds(text, **kw) if t == "ip"]

    assert ips("GET http://8.8.8.8/dns-query?name=x") == ["8.8.8.8"]
    assert ips("curl https://1.1.1.1:8443/health") == ["1.1.1.1"]
    assert ips("allow 8.8.4.0/24 and 2001:4860:4860::/48") == ["8.8.4.0", "2001:4860:4860::"]
    assert ips("resolver 8.8.8.8:53, backup 1.1.1.1.") == ["8.8.8.8", "1.1.1.1"]
    assert ips("服务器地址：8.8.8.8。") == ["8.8.8.8"]
    assert ips("ssh root@9.9.9.9") == ["9.9.9.9"]
    # private addresses only when asked for
    assert ips("http://10.0.0.1/path and 10.0.0.0/8") == []
    assert ips("http://10.0.0.1/path and 10.0.0.0/8", public_ip_only=False) == ["10.0.0.1", "10.0.0.0"]
    redacted, _ = pii.redact_series(pl.Series(["see http://8.8.8.8/x, 8.8.4.0/24 or 1.1.1.1."]))
    assert redacted.to_list() == ["see http://[IP]/x, [IP]/24 or [IP]."]


def test_version_strings_and_lookalikes_are_not_ips():
    for text in (
        "upgrade to version 1.2.3.4 today",
        "Version: 1.2.3.4",
        "ver. 1.2.3.4",
        "v 1.2.3.4 and v1.2.3.4",
        "版本号：1.2.3.4",
        "Windows build 10.0.19041.1",
        "release 1.2.3.4.5 notes",  # five parts
        "section 1.2.3.4.5.6",
        "tarball foo-1.2.3.4.tar.gz and 1.2.3.4.zip",
        "/opt/app/1.2.3.4/bin",
        "1.2.3.256 and 256.1.1.1 and 01.2.3.4",  # octets above 255 or with a leading zero
    ):
        assert [f for f in pii.find(text, public_ip_only=False) if f.type == "ip"] == [], text


def test_redact_series_counts_and_placeholders():
    s = pl.Series(["mail a@b.com and c@d.org", "no pii", None, "电话 13812345678"])
    new, counts = pii.redact_series(s, placeholder="<{type}>")
    assert new.to_list() == ["mail <email> and <email>", "no pii", None, "电话 <phone>"]
    assert counts == {"email": 2, "phone": 1}


def test_filter_redacts_everywhere_and_never_logs_values(tmp_path):
    secret_mail = "li.lei.private@163.com"
    rows = [
        Record(
            "sft",
            question=f"我的邮箱是 {secret_mail}，怎么办理？",
            answer="您可以携带身份证到窗口办理相关手续。",
        ).as_row(),
        Record(
            "sft",
            question="还有呢？",
            answer="请拨打我们的电话了解详细的办理流程。",
            history=[],
            system="客服电话 13912345678",
        ).as_row(),
    ]
    kept, dropped, stats = apply(to_frame(rows), load_rules(["pii"]))
    assert kept.height == 2 and dropped.height == 0
    assert kept["question"][0] == "我的邮箱是 [EMAIL]，怎么办理？" and kept["system"][1] == "客服电话 [PHONE]"
    assert stats["pii"] == {"email": 1, "phone": 1}
    assert stats["rules"]["pii-contact"]["redacted"] == 2
    assert secret_mail not in json.dumps(stats, ensure_ascii=False)


def test_pii_flag_explains_type_not_value(tmp_path):
    (tmp_path / "flag.yaml").write_text(
        "rules:\n  - id: has-pii\n    description: flag rows with PII\n    check: pii\n    fields: [question]\n    action: drop\n",
        encoding="utf-8",
    )
    rows = [Record("sft", question="联系 13812345678 吧", answer="好的，我们会尽快联系您。").as_row()]
    kept, dropped, _ = apply(to_frame(rows), load_rules([tmp_path / "flag.yaml"]))
    detail = json.loads(dropped["drop_detail"][0])[0]
    assert detail["rule"] == "has-pii" and detail["span"] == [3, 14] and detail["text"] == "[PHONE]"
    assert "13812345678" not in dropped["drop_detail"][0]


def test_ip_written_right_against_chinese_text_is_found():
    for text in (
        "服务器地址8.8.8.8",
        "IP是8.8.8.8，请检查",
        "连接到8.8.8.8:22失败",
        "地址是2001:db8::1的主机",
    ):
        types = [f.type for f in pii.find(text, ("ip",), public_ip_only=False)]
        assert types == ["ip"], text
    # numbered sections stay numbers
    for text in ("章节 1.2.1.1詹森", "见第1.2.3.4条", "§ 1.2.3.4 applies"):
        assert not pii.find(text, ("ip",), public_ip_only=False), text
