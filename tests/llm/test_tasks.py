import random

import pytest

from rlsuite.llm.tasks import (
    TASKS,
    CharTokenizer,
    make_split,
    preference_pairs,
    sample,
    scratchpad_steps,
    step_correctness,
    tool_result,
    verify,
)


def test_tokenizer_round_trip_and_left_padding():
    tok = CharTokenizer()
    ids = tok.encode("57+68=", bos=True, eos=True)
    assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id and tok.decode(ids) == "57+68="
    batch, mask = tok.batch_encode(["1+2=", "10+20="])
    comp, cmask = tok.batch_encode_completions(["3", "30"])
    assert comp.tolist() == [[tok.stoi["3"], tok.eos_id, 0], [tok.stoi["3"], tok.stoi["0"], tok.eos_id]]
    assert cmask.tolist() == [[1, 1, 0], [1, 1, 1]]
    assert batch.shape == (2, 7) and mask[0].tolist() == [0, 0, 1, 1, 1, 1, 1]
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.encode("x")


@pytest.mark.parametrize("task", TASKS)
def test_reference_answers_verify_and_wrong_ones_do_not(task):
    rng = random.Random(0)
    for _ in range(50):
        ex = sample(task, rng)
        assert verify(task, ex.prompt, ex.answer) == 1.0, ex
        assert verify(task, ex.prompt, ex.answer + "9") == 0.0
        assert CharTokenizer().decode(CharTokenizer().encode(ex.prompt + ex.answer)) == ex.prompt + ex.answer


def test_hand_computed_examples():
    assert verify("addition", "57+68=", "521") == 1.0  # 125 reversed
    assert scratchpad_steps(57, 68) == ["51", "21"]  # 7+8=15 -> 5 carry 1; 5+6+1=12 -> 2 carry 1
    assert verify("scratchpad", "57+68=", "51,21|521") == 1.0
    assert step_correctness("57+68=", "51,20|520") == [True, False]
    assert tool_result("57+68=") == "521" and verify("tool", "57+68=", "C521") == 1.0
    assert verify("filler", "57+68=", "____521") == 1.0
    assert verify("countdown", "3,5,2|6=", "5-2+3") == 1.0  # any order, each number once
    assert verify("countdown", "3,5,2|6=", "3+3") == 0.0
    assert verify("sorting", "3141=", "1134") == 1.0


def test_split_is_disjoint_and_deterministic():
    train = make_split("addition", 200, seed=0, held_out=False)
    test = make_split("addition", 30, seed=1, held_out=True)
    assert not {e.prompt for e in train} & {e.prompt for e in test}
    assert make_split("addition", 30, seed=1, held_out=True) == test


def test_preference_pairs_labelled_by_the_verifier():
    pairs = preference_pairs(["1+2="], [["3", "4", "3", "5"]], lambda p, c: verify("addition", p, c))
    assert pairs == [("1+2=", "3", "4"), ("1+2=", "3", "5")]
