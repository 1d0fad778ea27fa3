"""The model backends (OWLv2, SAM, Molmo2) through the same loader as real weights: tiny models built from
configs with the real transformers classes, saved to a folder, loaded by ``make_pointer`` / ``make_segmenter``
and run on one synthetic RGB-D frame; plus the error paths (no folder, no package, no M2T2) and Molmo's
point parser."""

from __future__ import annotations

import importlib.util
import string

import numpy as np
import pytest

from llm_trainer.perception.backends import models
from llm_trainer.perception.pipeline import ModelPaths, Perception, PerceptionConfig, make_pointer, make_segmenter
from llm_trainer.perception.stages import PerceptionError
from llm_trainer.perception.views import CameraView, ObjectQuery
from llm_trainer.sensors.cameras import CameraModel

H, W = 240, 320
QUERIES = [
    ObjectQuery("red_block", description="red block"),
    ObjectQuery("blue_cup", description="blue cup"),
    ObjectQuery("cube_a", description="green cube"),  # two alike objects: one phrase, two candidates
    ObjectQuery("cube_b", description="green cube"),
]


def _importable(name: str) -> bool:
    try:
        __import__(name)
    except Exception:  # absent, or built for another torch
        return False
    return True


HAS_TORCHVISION = _importable("torchvision")
OWL_READY = HAS_TORCHVISION or importlib.util.find_spec("scipy") is not None
needs_owl_backend = pytest.mark.skipif(
    not OWL_READY, reason="OWLv2's image processor needs scipy (or torchvision); neither is installed here"
)


@pytest.fixture(scope="module")
def view() -> CameraView:
    rgb = np.full((H, W, 3), 190, np.uint8)
    rgb[100:140, 150:190] = (200, 30, 30)  # a red square
    rgb[40:70, 40:80] = (30, 60, 200)
    K = np.array([[300.0, 0.0, W / 2], [0.0, 300.0, H / 2], [0.0, 0.0, 1.0]])
    camera = CameraModel("front", W, H, K, np.array([0.5, 0.0, 1.0]), np.diag([1.0, -1.0, -1.0]))
    return CameraView(camera, rgb, np.full((H, W), 0.8, np.float32))


# -- tiny models, saved as real checkpoints are ----------------------------------------------------------------


@pytest.fixture(scope="module")
def owlv2_folder(tmp_path_factory) -> str:
    """A tiny OWLv2 (1-layer 32-wide towers, 64-pixel images, 4x4 patches) with a character-level CLIP
    tokenizer of our own. Token id 0 is a plain character, so no query starts with it (OWL masks such a
    query as padding), and <|endoftext|> has the highest id (CLIP pools at the argmax id)."""
    torch = pytest.importorskip("torch")
    from transformers import CLIPTokenizer, Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    vocab = {"!": 0}
    for suffix in ("", "</w>"):
        vocab.update({c + suffix: len(vocab) + i for i, c in enumerate(string.ascii_lowercase)})
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16)
    assert tokenizer("red block")["input_ids"][0] == vocab["<|startoftext|>"]  # the vocab was not ignored
    text = dict(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=16, bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
    )  # fmt: skip
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=64)
    torch.manual_seed(0)
    model = Owlv2ForObjectDetection(Owlv2Config(text_config=text, vision_config=vision, projection_dim=32))
    with torch.no_grad():  # random heads saturate every box to the image border; tame them
        for head in (model.box_head, model.class_head, model.objectness_head):
            for p in head.parameters():
                p.mul_(0.05)
    processor = Owlv2Processor(
        image_processor=Owlv2ImageProcessor(size={"height": 64, "width": 64}), tokenizer=tokenizer
    )
    folder = tmp_path_factory.mktemp("owlv2")
    processor.save_pretrained(folder)
    model.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def sam_folder(tmp_path_factory) -> str:
    """A tiny SAM (2-layer 32-wide ViT on 64-pixel images, 32-wide prompt encoder and mask decoder)."""
    torch = pytest.importorskip("torch")
    from transformers import SamConfig, SamImageProcessor, SamModel, SamProcessor

    config = SamConfig(
        vision_config=dict(
            hidden_size=32, output_channels=32, num_hidden_layers=2, num_attention_heads=2, image_size=64,
            patch_size=16, window_size=2, global_attn_indexes=[1], mlp_dim=64, num_pos_feats=16,
        ),
        prompt_encoder_config=dict(hidden_size=32, image_size=64, patch_size=16, mask_input_channels=4),
        mask_decoder_config=dict(hidden_size=32, mlp_dim=64, num_hidden_layers=2, num_attention_heads=2,
                                 iou_head_hidden_dim=32),
    )  # fmt: skip
    torch.manual_seed(0)
    model = SamModel(config)
    image_processor = SamImageProcessor(
        size={"longest_edge": 64}, pad_size={"height": 64, "width": 64},
        mask_size={"longest_edge": 16}, mask_pad_size={"height": 16, "width": 16},
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("sam")
    SamProcessor(image_processor=image_processor).save_pretrained(folder)
    model.save_pretrained(folder)
    return str(folder)


def _tiny_molmo2(folder) -> None:
    """A tiny Molmo2 (2-layer 32-wide ViT on 56-pixel crops, 2-layer 32-wide LM) with a byte-level BPE
    tokenizer trained here, Molmo2's image tokens as added tokens, and a Qwen-style chat template."""
    import torch
    from tokenizers import Tokenizer, decoders, pre_tokenizers, trainers
    from tokenizers import models as tokenizer_models
    from transformers import (
        Molmo2Config,
        Molmo2ForConditionalGeneration,
        Molmo2ImageProcessor,
        Molmo2Processor,
        Molmo2VideoProcessor,
        PreTrainedTokenizerFast,
    )
    from transformers.models.molmo2.configuration_molmo2 import (
        Molmo2AdapterConfig,
        Molmo2TextConfig,
        Molmo2VisionConfig,
    )

    tok = Tokenizer(tokenizer_models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ['Point to the red block. <points coords="1 1 500 500">red block</points> There are none.'] * 4
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )  # fmt: skip
    tok.train_from_iterator(corpus, trainer)
    base = tok.get_vocab_size()
    image_tokens = ["<im_patch>", "<im_col>", "<im_start>", "<low_res_im_start>", "<frame_start>", "<im_end>",
                    "<frame_end>", "<im_low>"]  # fmt: skip
    tok.add_special_tokens(["<|im_start|>", "<|im_end|>", "<|image|>", "<|video|>", *image_tokens])
    ids = {t: tok.token_to_id(t) for t in image_tokens}
    eos = tok.token_to_id("<|endoftext|>")
    template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['content'] is string %}{{ m['content'] }}"
        "{% else %}{% for c in m['content'] %}{% if c['type'] == 'image' %}<|image|>{% elif c['type'] == 'text' %}"
        "{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    processor = Molmo2Processor(
        image_processor=Molmo2ImageProcessor(size={"height": 56, "width": 56}, max_crops=1, overlap_margins=[1, 1]),
        video_processor=Molmo2VideoProcessor(size={"height": 56, "width": 56}, num_frames=2),
        tokenizer=PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>"),
        chat_template=template,
    )
    heads = dict(num_attention_heads=4, num_key_value_heads=4, head_dim=8, hidden_size=32, intermediate_size=37)
    config = Molmo2Config(
        text_config=Molmo2TextConfig(
            vocab_size=base, additional_vocab_size=16, num_hidden_layers=2, max_position_embeddings=512,
            bos_token_id=eos, eos_token_id=eos, pad_token_id=eos, **heads,
        ),
        vision_config=Molmo2VisionConfig(num_hidden_layers=2, image_size=[56, 56], patch_size=14, **heads),
        adapter_config=Molmo2AdapterConfig(vision_feature_layer=[1], text_hidden_size=32, **heads),
        image_start_token_id=ids["<im_start>"], low_res_image_start_token_id=ids["<low_res_im_start>"],
        image_end_token_id=ids["<im_end>"], image_patch_id=ids["<im_patch>"],
        frame_start_token_id=ids["<frame_start>"], frame_end_token_id=ids["<frame_end>"],
    )  # fmt: skip
    torch.manual_seed(0)
    processor.save_pretrained(folder)
    Molmo2ForConditionalGeneration(config).save_pretrained(folder)


def _check_candidates(out: dict, queries: list[ObjectQuery]) -> None:
    assert set(out) == {q.name for q in queries}
    for q in queries:
        alike = sum(other.phrase() == q.phrase() for other in queries)
        assert isinstance(out[q.name], list) and len(out[q.name]) <= alike
        for u, v in out[q.name]:
            assert isinstance(u, float) and isinstance(v, float)
            assert 0 <= u < W and 0 <= v < H
    assert out["cube_a"] == out["cube_b"]  # alike objects share their candidates


# -- OWLv2 ----------------------------------------------------------------------------------------------------


@needs_owl_backend
def test_owlv2_pointer_loads_a_saved_folder_and_points_at_box_centres(owlv2_folder, view) -> None:
    pointer = make_pointer(PerceptionConfig(pointing="owlv2", models=ModelPaths(owlv2=owlv2_folder)))
    assert isinstance(pointer, models.Owlv2Pointer) and pointer.name == "owlv2" and pointer.threshold == 0.1
    assert not pointer.model.training
    _check_candidates(pointer.point(view, QUERIES), QUERIES)

    pointer.threshold = 0.0  # every box counts: the post-processing path must yield candidates
    out = pointer.point(view, QUERIES)
    _check_candidates(out, QUERIES)
    assert sum(len(c) for c in out.values()) >= 1
    # The best candidate of a phrase is the centre of its best-scoring post-processed box inside the image.
    phrases = ["red block", "blue cup", "green cube"]
    found = pointer.detect(view, phrases)
    assert found["boxes"].shape == (len(found["scores"]), 4) and set(found["labels"]) <= {0, 1, 2}
    for i, q in enumerate([QUERIES[0], QUERIES[1], QUERIES[2]]):
        centres = [((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in found["boxes"][np.argsort(-found["scores"])]]
        labels = found["labels"][np.argsort(-found["scores"])]
        inside = [c for c, label in zip(centres, labels) if label == i and 0 <= c[0] < W and 0 <= c[1] < H]
        assert bool(out[q.name]) == bool(inside)
        if inside:
            assert out[q.name][0] == pytest.approx(inside[0], abs=1e-3)
    # The same folder and device load once per process.
    again = make_pointer(PerceptionConfig(pointing="owlv2", models=ModelPaths(owlv2=owlv2_folder)))
    assert again.model is pointer.model


@needs_owl_backend
def test_owlv2_candidates_best_first_above_threshold_distinct_and_inside(owlv2_folder, view, monkeypatch) -> None:
    pointer = make_pointer(PerceptionConfig(pointing="owlv2", models=ModelPaths(owlv2=owlv2_folder)))
    boxes = np.array(
        [
            [100, 100, 140, 140],  # green cube, 0.9
            [102, 101, 141, 142],  # the same cube again, 0.8: overlaps the first, not a second cube
            [200, 50, 230, 90],  # the other green cube, 0.5
            [10, 10, 30, 30],  # green, 0.05: below the threshold
            [10, 250, 30, 290],  # red, 0.95 but its centre is in the padding below the 240-row image
            [60, 60, 80, 80],  # red, 0.3
        ],
        float,
    )
    found = {
        "boxes": boxes,
        "scores": np.array([0.9, 0.8, 0.5, 0.05, 0.95, 0.3]),
        "labels": np.array([2, 2, 2, 2, 0, 0]),
    }
    monkeypatch.setattr(pointer, "detect", lambda view, phrases: found)
    out = pointer.point(view, QUERIES)
    assert out["cube_a"] == out["cube_b"] == [(120.0, 120.0), (215.0, 70.0)]
    assert out["red_block"] == [(70.0, 70.0)]
    assert out["blue_cup"] == []
    assert pointer.point(view, []) == {}


@pytest.mark.skipif(OWL_READY, reason="scipy or torchvision is installed: OWLv2's image processor can run")
def test_owlv2_without_its_image_backend_says_what_to_install(tmp_path) -> None:
    with pytest.raises(PerceptionError, match="scipy"):
        make_pointer(PerceptionConfig(pointing="owlv2", models=ModelPaths(owlv2=str(tmp_path))))


# -- SAM ------------------------------------------------------------------------------------------------------


def test_sam_segmenter_loads_a_saved_folder_and_returns_an_image_sized_mask(sam_folder, view) -> None:
    segmenter = make_segmenter(PerceptionConfig(segmentation="sam", models=ModelPaths(sam=sam_folder)))
    assert isinstance(segmenter, models.SamSegmenter) and segmenter.name == "sam"
    assert not segmenter.model.training
    mask = segmenter.segment(view, QUERIES[0], (170.0, 120.0))
    assert mask is None or (mask.dtype == bool and mask.shape == (H, W) and mask.any())
    assert segmenter._last[0] is view.rgb  # the image embedding is kept for the next object of this view
    embedding = segmenter._last[1]
    # With every logit counting as foreground the post-processed mask covers the whole original image:
    # the mask really was upscaled and cropped to (H, W), not left at the decoder's size.
    segmenter.mask_threshold = -1e9
    full = segmenter.segment(view, QUERIES[1], (50.0, 60.0))
    assert full is not None and full.dtype == bool and full.shape == (H, W) and full.all()
    assert segmenter._last[1] is embedding
    assert segmenter.segment(view, QUERIES[0], (W + 5.0, 10.0)) is None  # a pixel outside the image


# -- Molmo2 ---------------------------------------------------------------------------------------------------


def test_molmo_pointer_runs_a_tiny_molmo2(tmp_path, view) -> None:
    if not HAS_TORCHVISION:
        pytest.skip("Molmo2's image processor needs torchvision; the full-torch extra installs it")
    _tiny_molmo2(tmp_path)
    pointer = make_pointer(PerceptionConfig(pointing="molmo", models=ModelPaths(molmo=str(tmp_path))))
    assert isinstance(pointer, models.MolmoPointer) and pointer.name == "molmo"
    pointer.max_new_tokens = 12
    assert isinstance(pointer.answer(view, "Point to the red block."), str)
    _check_candidates(pointer.point(view, QUERIES), QUERIES)  # random weights: gibberish, never a crash
    # One prompt per distinct phrase; a phrase's points (in Molmo's order) go to each object with it.
    answers = {
        "Point to the red block.": '<points coords="1 1 500 500">red block</points>',
        "Point to the blue cup.": "There are none.",
        "Point to the green cube.": '<points coords="1 1 100 100 2 900 900 3 500 100">green cube</points>',
    }
    asked = []
    pointer.answer = lambda view, prompt: asked.append(prompt) or answers[prompt]
    out = pointer.point(view, QUERIES)
    assert sorted(asked) == sorted(answers)
    assert out == {"red_block": [(160.0, 120.0)], "blue_cup": [], "cube_a": [(32.0, 24.0), (288.0, 216.0)],
                   "cube_b": [(32.0, 24.0), (288.0, 216.0)]}  # fmt: skip


@pytest.mark.skipif(HAS_TORCHVISION, reason="torchvision imports here: Molmo2's image processor can run")
def test_molmo_without_torchvision_says_to_install_it(tmp_path) -> None:
    with pytest.raises(PerceptionError, match="torchvision"):
        make_pointer(PerceptionConfig(pointing="molmo", models=ModelPaths(molmo=str(tmp_path))))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('<points coords="1 1 073 160 2 173 600">the boats</points>', [(23.36, 38.4), (55.36, 144.0)]),
        ('Sure: <points coords="1 1 500 500">red block</points>.', [(160.0, 120.0)]),
        ('<points coords="1 500 250"/>', [(160.0, 60.0)]),  # no image index
        ('<point x="50.0" y="25.0" alt="red block">red block</point>', [(160.0, 60.0)]),
        ('<points x1="10" y1="20" x2="90.5" y2="80" alt="x">x</points>', [(32.0, 48.0), (289.6, 192.0)]),
        ("<point x='100' y='100'>corner</point>", [(W - 1.0, H - 1.0)]),  # the far edge stays in the image
        ('<point x="10" y="10">a</point> then <points coords="1 1 900 900">b</points>', [(32.0, 24.0), (288, 216)]),
        ("There are none.", []),
        ("", []),
        ('<point x="abc" y="">', []),
        ('<points coords="1 1 2000 50">', []),  # out of range
        ('<point x="150" y="20">', []),  # percent above 100
        ('<points coords="1 1 5', []),  # cut off mid-answer
    ],
)
def test_molmo_point_parser(text: str, expected: list) -> None:
    got = models.parse_points(text, W, H)
    assert len(got) == len(expected)
    for (u, v), (eu, ev) in zip(got, expected):
        assert (u, v) == (pytest.approx(eu), pytest.approx(ev))


# -- error paths ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "key"),
    [
        (PerceptionConfig(pointing="owlv2"), "perception.models.owlv2"),
        (PerceptionConfig(pointing="molmo"), "perception.models.molmo"),
        (PerceptionConfig(segmentation="sam"), "perception.models.sam"),
    ],
)
def test_an_unset_model_folder_names_the_yaml_key(config: PerceptionConfig, key: str) -> None:
    make = make_segmenter if config.segmentation == "sam" else make_pointer
    with pytest.raises(PerceptionError, match=key) as e:
        make(config)
    assert "config/perception.yaml" in str(e.value) and "downloaded" in str(e.value)


def test_a_missing_or_empty_model_folder_is_a_perception_error(tmp_path) -> None:
    missing = tmp_path / "no_such_folder"
    with pytest.raises(PerceptionError, match="not a folder"):
        make_segmenter(PerceptionConfig(segmentation="sam", models=ModelPaths(sam=str(missing))))
    # A folder without a checkpoint: transformers' own error, as a PerceptionError (and nothing downloaded).
    with pytest.raises(PerceptionError, match="not a loadable sam folder"):
        make_segmenter(PerceptionConfig(segmentation="sam", models=ModelPaths(sam=str(tmp_path))))


def test_a_cuda_device_without_cuda_is_a_perception_error(sam_folder) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(PerceptionError, match="perception.models.device"):
        make_segmenter(PerceptionConfig(segmentation="sam", models=ModelPaths(sam=sam_folder, device="cuda")))


def test_m2t2_grasp_needs_the_m2t2_package() -> None:
    if importlib.util.find_spec("m2t2") is not None:
        pytest.skip("m2t2 is installed here")
    with pytest.raises(PerceptionError, match="M2T2") as e:
        models.require_m2t2()
    assert "CUDA" in str(e.value) and "grasp: geometric" in str(e.value)
    with pytest.raises(PerceptionError, match="M2T2"):
        Perception(PerceptionConfig(grasp="m2t2"))
