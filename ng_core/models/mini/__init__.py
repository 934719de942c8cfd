"""The embedded default model ng-mini-llava, as it is served: assembly from registry pieces and the committed
assets (``assemble``), weights conversion (``gguf_smollm2``, ``onnx_dinov2``) and the reader LoRA merged at
assembly (``reader_lora``). Its training and evaluation live in :mod:`ng_train.mini`, which nothing here imports."""
