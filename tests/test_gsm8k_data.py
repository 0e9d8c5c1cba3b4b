"""GSM8K rows for the recipe: local JSONL splits, the columns they need, and prompts with or without a template."""

import json

import pytest

from trl_grpo_plus.gsm8k import SYSTEM_PROMPT, as_prompts, load_gsm8k
from trl_grpo_plus.testing import tiny_tokenizer

ROW = {"question": "Ann has 3 pens and buys 2 more. How many pens?", "answer": "3+2=5\n#### 5"}


@pytest.fixture
def gsm8k_folder(tmp_path):
    (tmp_path / "train.jsonl").write_text(json.dumps(ROW) + "\n" + json.dumps({**ROW, "question": "Again?"}) + "\n")
    return tmp_path


def test_a_local_split_is_read_from_its_jsonl_file_and_can_be_limited(gsm8k_folder):
    assert load_gsm8k("train", dataset_path=str(gsm8k_folder)).num_rows == 2
    assert load_gsm8k("train", dataset_path=str(gsm8k_folder), limit=1)["question"] == [ROW["question"]]


def test_a_missing_split_file_lists_the_files_that_are_there(gsm8k_folder):
    with pytest.raises(FileNotFoundError, match=r"no test.jsonl for the 'test' split \(found: train.jsonl\)"):
        load_gsm8k("test", dataset_path=str(gsm8k_folder))


def test_a_tokenizer_with_a_chat_template_gets_system_and_user_messages(gsm8k_folder):
    rows = as_prompts(load_gsm8k("train", dataset_path=str(gsm8k_folder)), tiny_tokenizer())
    assert rows[0]["prompt"] == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": ROW["question"]},
    ]
    assert rows[0]["answer"] == ROW["answer"], "the gold answer stays for the rewards"


def test_a_base_model_without_a_chat_template_gets_a_plain_text_prompt(gsm8k_folder):
    tokenizer = tiny_tokenizer()
    tokenizer.chat_template = None
    rows = as_prompts(load_gsm8k("train", dataset_path=str(gsm8k_folder)), tokenizer, system_prompt="Solve it.")
    assert rows[0]["prompt"] == f"Solve it.\n\nQuestion: {ROW['question']}\nAnswer: "


def test_an_empty_system_prompt_is_left_out(gsm8k_folder):
    rows = as_prompts(load_gsm8k("train", dataset_path=str(gsm8k_folder)), tiny_tokenizer(), system_prompt="")
    assert rows[0]["prompt"] == [{"role": "user", "content": ROW["question"]}]
