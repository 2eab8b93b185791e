"""Stand-ins for the parts of SGLang that cxlkv.sglang and its tests touch, for machines where SGLang
is not installed. Module paths, class and function names, arguments and return types follow
sgl-project/sglang at commit d315eb725044e435b146c85488b7c6d9222f7fec (python/sglang/srt/...);
the bodies are small ones of our own, CPU only, enough to drive the storage backend the way the
engine does. tests/python/test_sglang.py puts this folder first on sys.path."""
