from __future__ import annotations

import pytest
import yaml

from app.rules.positions import DuplicateKey, Position, YamlPositions, yaml_error_position

RULES = """\
rules:
  - id: thank-you
    when:
      event: order.created
    send:
      after: 2d
      template: thank_you
  - id: review
    sned:
      after: 5d
"""


@pytest.fixture
def rules() -> YamlPositions:
    return YamlPositions.from_text(RULES)


def test_nested_value(rules: YamlPositions) -> None:
    assert rules.locate(("rules", 0, "send", "after")) == Position(6, 14)
    assert rules.locate(("rules", 1, "id")) == Position(8, 9)


def test_sequence_item_is_the_dash_entry(rules: YamlPositions) -> None:
    # A block mapping inside a sequence starts at its first key, just after the dash.
    assert rules.locate(("rules", 1)) == Position(8, 5)


def test_key_of_unknown_field(rules: YamlPositions) -> None:
    assert rules.locate_key(("rules", 1, "sned")) == Position(9, 5)
    assert rules.locate(("rules", 1, "sned")) == Position(10, 7)


def test_locate_key_falls_back_when_key_is_missing(rules: YamlPositions) -> None:
    assert rules.locate_key(("rules", 1, "send")) == Position(8, 5)
    # A sequence index has no key node, so the value itself is the answer.
    assert rules.locate_key(("rules", 1)) == Position(8, 5)


def test_missing_key_points_at_containing_mapping(rules: YamlPositions) -> None:
    assert rules.locate(("rules", 1, "template")) == Position(8, 5)
    assert rules.locate(("rules", 0, "send", "expires")) == Position(6, 7)


def test_index_past_end_points_at_sequence(rules: YamlPositions) -> None:
    assert rules.locate(("rules", 7, "id")) == Position(2, 3)
    assert rules.locate(("rules", -1)) == Position(2, 3)


def test_path_through_scalar_stops_at_scalar(rules: YamlPositions) -> None:
    assert rules.locate(("rules", 0, "id", "deeper", 3)) == Position(2, 9)


def test_pydantic_union_tag_stops_at_field(rules: YamlPositions) -> None:
    assert rules.locate(("rules", 0, "send", "after", "function-after[_duration(), str]")) == (
        Position(6, 14)
    )


def test_empty_path_is_document_root(rules: YamlPositions) -> None:
    assert rules.locate(()) == Position(1, 1)


def test_flow_style() -> None:
    text = 'rules:\n  - when: {event: order.created, items: {sku: ["A-*"]}}\n'
    positions = YamlPositions.from_text(text)
    column = text.splitlines()[1].index('["A-*"]') + 1
    assert positions.locate(("rules", 0, "when", "items", "sku")) == Position(2, column)
    assert positions.locate(("rules", 0, "when", "items", "sku", 0)) == Position(2, column + 1)
    assert positions.locate_key(("rules", 0, "when", "items", "sku")) == Position(2, column - 5)


def test_columns_count_characters_not_bytes() -> None:
    text = "name: {title: Спасибо за заказ, after: 2d}\n"
    positions = YamlPositions.from_text(text)
    assert positions.locate(("name", "after")) == Position(1, text.index("2d") + 1)


def test_int_step_addresses_integer_keys() -> None:
    positions = YamlPositions.from_text("limits:\n  1: one\n  2: two\n")
    assert positions.locate(("limits", 2)) == Position(3, 6)


def test_dict_key_error_points_at_key() -> None:
    positions = YamlPositions.from_text("vars:\n  bad key: 1\n")
    assert positions.locate(("vars", "bad key", "[key]")) == Position(2, 3)


def test_duplicate_keys_last_one_wins_like_safe_load() -> None:
    positions = YamlPositions.from_text("after: 1d\nafter: 2d\n")
    assert positions.locate(("after",)) == Position(2, 8)


def test_duplicate_keys_are_listed_where_written_again() -> None:
    text = "after: 1d\nsend: {at: 1d, at: 2d}\nafter: 2d\nafter: 3d\n"
    assert YamlPositions.from_text(text).duplicate_keys() == [
        DuplicateKey("at", first=Position(2, 8), again=Position(2, 16)),
        DuplicateKey("after", first=Position(1, 1), again=Position(3, 1)),
        DuplicateKey("after", first=Position(1, 1), again=Position(4, 1)),
    ]


def test_duplicate_keys_in_sequences_and_distinct_keys() -> None:
    text = "- {a: 1, b: 2}\n- {a: 1, '1': x, 1: y}\n- [{c: 1, c: 2}]\n"
    # '1' (a string) and 1 (an int) are different keys to safe_load.
    assert YamlPositions.from_text(text).duplicate_keys() == [
        DuplicateKey("c", first=Position(3, 5), again=Position(3, 11))
    ]


def test_duplicate_keys_survive_python_tags_and_recursive_aliases() -> None:
    text = "a: &x {b: *x}\n!!python/name:os.system k: 1\n!!python/name:os.system k: 2\n"
    duplicates = YamlPositions.from_text(text).duplicate_keys()
    assert duplicates == [DuplicateKey("k", first=Position(2, 1), again=Position(3, 1))]


def test_merge_keys_are_followed() -> None:
    text = "base: &base\n  after: 2d\nrule:\n  <<: *base\n  template: t\n"
    positions = YamlPositions.from_text(text)
    assert positions.locate(("rule", "template")) == Position(5, 13)
    # The merged value lives where the anchor defined it.
    assert positions.locate(("rule", "after")) == Position(2, 10)


def test_python_tags_are_composed_not_constructed() -> None:
    text = "rules:\n  - id: x\n    send: !!python/object/apply:os.system [echo hi]\n"
    positions = YamlPositions.from_text(text)
    assert positions.locate(("rules", 0, "send")) == Position(3, 11)
    assert positions.locate(("rules", 0, "id")) == Position(2, 9)
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load(text)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_document(text: str) -> None:
    positions = YamlPositions.from_text(text)
    assert positions.locate(("rules", 0, "id")) == Position(1, 1)
    assert positions.locate_key(("rules",)) == Position(1, 1)


def test_syntax_error_position() -> None:
    text = "rules:\n  - id: x\n    send: [2d\n"
    with pytest.raises(yaml.YAMLError) as caught:
        YamlPositions.from_text(text)
    position = yaml_error_position(caught.value)
    assert position is not None
    # The stream ends inside the flow sequence: PyYAML reports the end of the text.
    assert position == Position(4, 1)


def test_syntax_error_position_bad_indentation() -> None:
    text = "rules:\n  - id: x\n   bad: y\n"
    with pytest.raises(yaml.YAMLError) as caught:
        YamlPositions.from_text(text)
    # The problem mark is the start of the mis-indented key.
    assert yaml_error_position(caught.value) == Position(3, 4)


def test_error_without_mark_has_no_position() -> None:
    assert yaml_error_position(yaml.YAMLError("no mark")) is None
    with pytest.raises(yaml.YAMLError) as caught:
        YamlPositions.from_text("a: \x07\n")
    assert yaml_error_position(caught.value) is None


def test_position_prints_as_line_colon_column() -> None:
    assert str(Position(3, 14)) == "3:14"
