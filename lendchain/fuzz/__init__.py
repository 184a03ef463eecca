"""Mutation fuzzing of every decoder that reads bytes from outside the node.

``python -m lendchain.fuzz --inputs 1000000`` feeds each decoder mutated
copies of valid encodings (bit flips, byte overwrites, truncation,
insertion, duplication, splicing with another seed, random noise) and fails
on any exception other than the decoder's documented clean error, and on
any single input slower than ``--slow-ms``. The seed corpus is built from
real objects each run, so it follows the formats as they change.
"""
