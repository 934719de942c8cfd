"""The embedded default model ng-mini-llava: assembly from registry pieces (``assemble``), weights conversion
(``gguf_smollm2``, ``onnx_dinov2``), the reader LoRA (``reader_lora``, ``reader_card``), and the training and
evaluation scripts (``train_projector`` with its ``train_projector_*`` parts, ``train_reader`` with the turn
variants of ``reader_variants``, ``eval_mini``, ``eval_reader``, and what they share: ``train_recipe``,
``train_steps``, ``eval_judges``), which are leaves: nothing in the library imports them."""
