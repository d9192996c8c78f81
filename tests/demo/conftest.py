"""Shared by the demo tests: synthetic example images (``zsad synth``), a tiny-clip detector cache."""
import pytest


@pytest.fixture(scope="session")
def examples(tmp_path_factory):
    from zsad.demo.session import make_examples

    return make_examples(tmp_path_factory.mktemp("demo-examples"))  # 11 test images, 3 references


@pytest.fixture(scope="session")
def bad_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("bad") / "broken.png"
    path.write_text("this is a text file, not an image\n")
    return str(path)
