"""The model and everything that reads or writes it: labgpt (labgpt.py, attention.py), its tokenizer and
chat format, the generation engine with its KV cache and tool loop, loading, export to Llama, and the
inspection of tokens, embeddings and attention. Imports nothing that trains."""
