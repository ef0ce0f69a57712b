"""The rule language of Neural Optimizer Search: vocabulary, rules, parser, fingerprints."""

from optsearch.dsl import vocab
from optsearch.dsl.errors import RuleError
from optsearch.dsl.fingerprint import fingerprint, rejection
from optsearch.dsl.rule import Rule, parse

__all__ = ["Rule", "RuleError", "fingerprint", "parse", "rejection", "vocab"]
