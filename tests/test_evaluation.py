"""Greedy pass@1: decoding, scoring, sharding across processes, and the before/after report."""

import json

import pytest

from trl_grpo_plus.evaluation import Evaluation, greedy_pass_at_1, report_table, shard_indices, write_report
from trl_grpo_plus.testing import tiny_model, tiny_tokenizer


def test_shards_are_equal_sized_and_cover_every_problem_once_padding_aside():
    for count in (0, 1, 7, 8, 9):
        shards = [shard_indices(count, rank, 3) for rank in range(3)]
        assert len({len(shard) for shard in shards}) == 1
        assert sorted(set(i for shard in shards for i in shard)) == list(range(count))


def test_a_completion_is_correct_when_its_reward_is_one():
    model, tokenizer = tiny_model(), tiny_tokenizer()
    seen = {}

    def first_prompt_right(prompts, completions, answer, **kwargs):
        seen.update(prompts=prompts, completions=completions, answer=answer)
        return [1.0 if p == "1+1=" else 0.0 for p in prompts]

    evaluation = greedy_pass_at_1(
        model, tokenizer, ["1+1=", "2+2=", "3+3="], ["#### 2", "#### 4", "#### 6"], reward=first_prompt_right,
        max_new_tokens=4, batch_size=2, progress=False,
    )  # fmt: skip
    assert (evaluation.correct, evaluation.total) == (1, 3) and evaluation.accuracy == pytest.approx(1 / 3)
    assert seen["answer"] == ["#### 2", "#### 4", "#### 6"] and len(seen["completions"]) == 3
    assert [sample["correct"] for sample in evaluation.samples] == [True, False, False]


def test_decoding_is_greedy_and_independent_of_the_batch_size():
    model, tokenizer = tiny_model(), tiny_tokenizer()
    prompts = ["1+1=", "12+30=", "7+8=", "100+1="]

    def completions(batch_size):
        evaluation = greedy_pass_at_1(
            model, tokenizer, prompts, ["#### 0"] * 4, max_new_tokens=6, batch_size=batch_size, progress=False
        )
        return [sample["completion"] for sample in evaluation.samples]

    assert completions(1) == completions(4)
    assert model.training, "the model's training mode is restored"


def test_conversational_prompts_go_through_the_chat_template():
    tokenizer = tiny_tokenizer()
    evaluation = greedy_pass_at_1(
        tiny_model(), tokenizer, [[{"role": "user", "content": "1+1?"}]], ["#### 2"], max_new_tokens=2, progress=False
    )
    assert evaluation.samples[0]["prompt"] == "user: 1+1?\nassistant: "


def test_mismatched_prompts_and_answers_are_refused():
    with pytest.raises(ValueError, match="2 prompts but 1 answers"):
        greedy_pass_at_1(tiny_model(), tiny_tokenizer(), ["a", "b"], ["#### 1"], progress=False)


def test_the_report_has_before_after_and_their_delta(tmp_path):
    evaluations = {"before": Evaluation(0.25, 1, 4), "after": Evaluation(0.75, 3, 4)}
    report = json.loads(write_report(tmp_path / "eval.json", evaluations).read_text())
    assert report["before"]["accuracy"] == 0.25 and report["after"]["correct"] == 3 and report["delta"] == 0.5
    table = report_table(evaluations)
    assert "25.0% (1/4)" in table and "75.0% (3/4)" in table and "+50.0 points" in table
    assert table.startswith("pass@1 (greedy)\n") and report_table(evaluations, title="held-out").startswith(
        "held-out\n"
    )
