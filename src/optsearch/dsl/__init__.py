"""The rule language of Neural Optimizer Search: vocabulary, rules, parser, fingerprints."""

from optsearch.dsl import limits, vocab
from optsearch.dsl.errors import RuleError
from optsearch.dsl.rule import Rule, parse, rejection

__all__ = ["Rule", "RuleError", "limits", "parse", "rejection", "vocab"]
