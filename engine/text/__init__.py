"""The text front end: ``clean`` (checks and clean-up), ``split`` (sentence chunks for narration), ``normalize``
(each chunk read out as words, with ``numbers`` and the one abbreviation table, ``lexicon``).

Nothing is imported here, so ``engine.text.clean`` (what the API checks texts with) loads neither num2words nor
the normaliser's patterns, let alone onnxruntime or espeak-ng.
"""
