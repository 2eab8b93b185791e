"""Stand-ins for the few vLLM modules that cxlkv.vllm and its tests import, written from vLLM's
signatures at commit 9aaf83ef502fc37bc647f6e474314d48ba36cd1c (vLLM is not installed here).
tests/python/test_vllm.py puts tests/python/standins on sys.path; each module holds only the
names, fields and defaults those tests use, with upstream's spelling."""
