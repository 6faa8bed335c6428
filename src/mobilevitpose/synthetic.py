"""Synthetic COCO people: the embedded default dataset, written in the COCO 2017 layout.

Design
------
Each person is a small 3D articulated body (pelvis, torso, neck, head, two arms and two legs)
built from anthropometric limb-length ratios and joint angles drawn inside anatomical limits
from a few pose families (standing, walking, sitting, crouching, active). The body is turned to
a random view (front, side, back), tilted by a random camera pitch and roll, and projected
orthographically. Projection gives depth for free, so the parts of all people are painted back
to front (painter's algorithm): limbs are tapered capsules, the torso is the convex hull of a
few spheres (shoulders, waist, hips), the head is a hair disc plus a face disc with eyes, nose
and ears. Left limbs and ears are tinted warm and right ones cool, so the two sides are
distinguishable in every view.

Every filled shape is drawn at once into the image, a person-label buffer (0 background,
1..P people, ``OCCLUDER_LABEL`` objects in front of people) and a body-part buffer. Visibility
is then read off those buffers, so it agrees with the pixels by construction:

* v=0: the joint falls outside the image (then x = y = 0, as in COCO), or it is a face point
  turned away from the camera (COCO leaves the face of a person seen from behind unlabelled);
* v=2: the joint's pixel shows this person, and a body part the joint belongs to
  (``KEYPOINT_PARTS``), e.g. an elbow on the upper arm or forearm;
* v=1: anything else: another person, an object, or the person's own other parts in front.

``area`` is the person's visible-pixel count and ``bbox`` the tight box of those pixels (what
COCO derives from the segmentation). People with fewer than ``MIN_KEYPOINTS`` labelled joints
or less than ``min_area`` visible pixels (COCO's "small" range) are drawn but not annotated.

Images are rendered from per-image seeds ``(seed, split, index)`` so the result does not depend
on how the work is chunked over processes; annotation JSON is written with sorted keys and
rounded floats, so the same seed gives byte-identical files.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import math
import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from enum import IntEnum
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mobilevitpose.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS, SKELETON

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val")
DETECTIONS_FILE = "COCO_val2017_detections_AP_H_56_person.json"
OCCLUDER_LABEL = 255
JPEG_QUALITY = 90
MIN_KEYPOINTS = 3
# COCO's "small" objects (area < 32^2) essentially carry no keypoint annotations.
MIN_AREA = 32 * 32
MAX_IMAGES_PER_SPLIT = 10**6  # image ids are split * 10**6 + index + 1
MAX_PEOPLE_LIMIT = 20
DEFAULT_IMAGE_SIZE = (320, 256)
DEFAULT_NUM_TRAIN = 1500
DEFAULT_NUM_VAL = 150
DEFAULT_MAX_PEOPLE = 4

# Fixed-point bits for OpenCV's sub-pixel polygon filling.
_SHIFT = 4
_ONE = 1 << _SHIFT


class Part(IntEnum):
    """Body-part ids written to the part buffer (0: no body part)."""

    NONE = 0
    TORSO = 1
    NECK = 2
    HEAD = 3
    LEFT_UPPER_ARM = 4
    RIGHT_UPPER_ARM = 5
    LEFT_FOREARM = 6
    RIGHT_FOREARM = 7
    LEFT_HAND = 8
    RIGHT_HAND = 9
    LEFT_THIGH = 10
    RIGHT_THIGH = 11
    LEFT_SHIN = 12
    RIGHT_SHIN = 13
    LEFT_FOOT = 14
    RIGHT_FOOT = 15


def _keypoint_parts() -> tuple[frozenset[int], ...]:
    limb_parts = {
        "shoulder": ("TORSO", "UPPER_ARM"),
        "elbow": ("UPPER_ARM", "FOREARM"),
        "wrist": ("FOREARM", "HAND"),
        "hip": ("TORSO", "THIGH"),
        "knee": ("THIGH", "SHIN"),
        "ankle": ("SHIN", "FOOT"),
    }
    table = []
    for name in KEYPOINT_NAMES:
        side, _, joint = name.partition("_")
        if joint in limb_parts:
            table.append(
                frozenset(
                    Part[p if p == "TORSO" else f"{side.upper()}_{p}"] for p in limb_parts[joint]
                )
            )
        else:  # nose, eyes, ears sit on the head
            table.append(frozenset({Part.HEAD}))
    return tuple(table)


# The body parts whose pixels count as "this joint is visible", per keypoint.
KEYPOINT_PARTS: tuple[frozenset[int], ...] = _keypoint_parts()
_FACE_IDS = tuple(i for i, n in enumerate(KEYPOINT_NAMES) if n.endswith(("nose", "eye", "ear")))

# Segment lengths and radii as fractions of standing height (rounded adult averages).
_LENGTHS = {
    "hip_half": 0.085,
    "shoulder_half": 0.115,
    "torso": 0.29,
    "neck": 0.055,
    "head": 0.062,  # head radius
    "upper_arm": 0.17,
    "forearm": 0.15,
    "hand": 0.055,
    "thigh": 0.245,
    "shin": 0.245,
    "foot": 0.1,
}
_RADII = {  # (proximal, distal)
    "upper_arm": (0.034, 0.028),
    "forearm": (0.027, 0.021),
    "hand": (0.022, 0.02),
    "thigh": (0.055, 0.042),
    "shin": (0.04, 0.03),
    "foot": (0.026, 0.022),
    "neck": (0.028, 0.028),
}

# Warm tint for the person's left side, cool for the right (BGR), blended into limb colours.
_SIDE_TINT = {1: np.array([40.0, 90.0, 235.0]), -1: np.array([235.0, 150.0, 40.0])}
_TINT_ALPHA = 0.35
_SKIN_TONES = np.array(
    [[185, 205, 240], [150, 180, 225], [110, 150, 200], [80, 115, 165], [55, 80, 120]],
    dtype=np.float64,
)
_UNIT_CIRCLE = np.stack(
    [np.cos(np.linspace(0, 2 * np.pi, 20, endpoint=False)),
     np.sin(np.linspace(0, 2 * np.pi, 20, endpoint=False))],
    axis=1,
)  # fmt: skip


@dataclass(frozen=True)
class RenderedPerson:
    """One drawn person. `label` is its id in the label buffer."""

    label: int
    keypoints_img: np.ndarray  # (17, 2) projected joints on a 0.01 px grid; (0, 0) where v=0
    visibility: np.ndarray  # (17,) uint8 COCO flags
    turned_away: np.ndarray  # (17,) bool: face points on the far side of the head
    area: int  # visible pixels
    bbox_xywh: tuple[float, float, float, float] | None  # tight box of visible pixels
    height_px: float  # standing height in pixels
    annotated: bool

    @property
    def num_keypoints(self) -> int:
        return int(np.count_nonzero(self.visibility))


@dataclass(frozen=True)
class RenderedImage:
    image: np.ndarray  # (H, W, 3) uint8 BGR
    labels: np.ndarray  # (H, W) uint8: 0 background, 1..P people, OCCLUDER_LABEL objects
    parts: np.ndarray  # (H, W) uint8 `Part` of the person shown at each pixel
    people: list[RenderedPerson]


@dataclass
class _Shape:
    """A filled convex polygon; `labelled` shapes also go to the label and part buffers."""

    points: np.ndarray  # (N, 2) image pixels
    colour: tuple[float, float, float]
    labelled: bool = True


@dataclass
class _Primitive:
    depth: float
    part: Part
    shapes: list[_Shape]


# --------------------------------------------------------------------------- geometry helpers


def _rot_x(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_y(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_z(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


_DOWN = np.array([0.0, -1.0, 0.0])
_UP = np.array([0.0, 1.0, 0.0])


def _capsule(a: np.ndarray, b: np.ndarray, ra: float, rb: float) -> np.ndarray:
    """Convex hull of two discs: a tapered limb seen in orthographic projection."""
    ring = np.concatenate([a + ra * _UNIT_CIRCLE, b + rb * _UNIT_CIRCLE])
    return cv2.convexHull(ring.astype(np.float32))[:, 0, :].astype(np.float64)


def _disc(center: np.ndarray, rx: float, ry: float | None = None, angle: float = 0.0) -> np.ndarray:
    ry = rx if ry is None else ry
    c, s = math.cos(angle), math.sin(angle)
    local = _UNIT_CIRCLE * np.array([rx, ry])
    return center + local @ np.array([[c, s], [-s, c]])


def _fill(canvas: np.ndarray, points: np.ndarray, value: Any) -> None:
    pts = np.round(points * _ONE).astype(np.int32)
    cv2.fillConvexPoly(canvas, pts, value, cv2.LINE_8, _SHIFT)


# --------------------------------------------------------------------------- colours


def _hsv_colour(rng: np.random.Generator, sat: tuple[float, float], val: tuple[float, float]):
    hsv = np.array(
        [[[rng.uniform(0, 180), rng.uniform(*sat) * 255, rng.uniform(*val) * 255]]],
        dtype=np.uint8,
    )
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float64)


def _shade(colour: np.ndarray, factor: float, offset: float = 0.0) -> tuple[float, float, float]:
    out = np.clip(colour * factor + offset, 0, 255)
    return (float(out[0]), float(out[1]), float(out[2]))


def _tint(colour: np.ndarray, side: int) -> np.ndarray:
    return (1 - _TINT_ALPHA) * colour + _TINT_ALPHA * _SIDE_TINT[side]


def _outfit(rng: np.random.Generator) -> dict[str, Any]:
    skin = _SKIN_TONES[rng.integers(len(_SKIN_TONES))] + rng.uniform(-12, 12, 3)
    shirt = _hsv_colour(rng, (0.15, 0.9), (0.3, 0.95))
    trousers = _hsv_colour(rng, (0.1, 0.7), (0.15, 0.75))
    return {
        "skin": np.clip(skin, 0, 255),
        "hair": _hsv_colour(rng, (0.2, 0.8), (0.05, 0.45)),
        "shirt": shirt,
        "sleeve": shirt if rng.random() < 0.5 else None,  # None: short sleeves
        "trousers": trousers,
        "trouser_legs": trousers if rng.random() < 0.8 else None,  # None: shorts
        "shoes": _hsv_colour(rng, (0.0, 0.6), (0.05, 0.5)),
    }


# --------------------------------------------------------------------------- poses


def _leg_angles(rng: np.random.Generator, family: str) -> list[dict[str, float]]:
    u = rng.uniform
    if family == "stand":
        return [{"flex": u(-8, 12), "abd": u(-3, 12), "knee": u(0, 15)} for _ in range(2)]
    if family == "walk":
        stride = u(10, 40)
        legs = [
            {"flex": stride, "abd": u(0, 6), "knee": u(0, 30)},
            {"flex": -u(5, 0.8 * stride), "abd": u(0, 6), "knee": u(10, 70)},
        ]
        return legs if rng.random() < 0.5 else legs[::-1]
    if family == "sit":
        return [{"flex": u(65, 100), "abd": u(0, 25), "knee": u(60, 110)} for _ in range(2)]
    if family == "crouch":
        return [{"flex": u(85, 130), "abd": u(5, 35), "knee": u(100, 145)} for _ in range(2)]
    return [{"flex": u(-30, 100), "abd": u(-5, 50), "knee": u(0, 130)} for _ in range(2)]


def _arm_angles(rng: np.random.Generator, family: str) -> dict[str, float]:
    u = rng.uniform
    style = rng.choice(3, p=[0.3, 0.35, 0.35] if family == "active" else [0.5, 0.3, 0.2])
    if style == 0:  # hanging
        angles = {"abd": u(3, 25), "flex": u(-25, 35), "elbow": u(0, 40)}
    elif style == 1:  # bent in front / on the hips
        angles = {"abd": u(0, 45), "flex": u(-10, 80), "elbow": u(50, 145)}
    else:  # raised
        angles = {"abd": u(60, 175), "flex": u(-20, 90), "elbow": u(0, 120)}
    angles["twist"] = u(-60, 60)
    angles["wrist"] = u(-20, 40)
    return angles


def _view_yaw(rng: np.random.Generator) -> float:
    """Mostly frontal views, then side views, then views from behind."""
    kind = rng.choice(3, p=[0.55, 0.3, 0.15])
    sign = 1.0 if rng.random() < 0.5 else -1.0
    if kind == 0:
        return rng.uniform(-55, 55)
    if kind == 1:
        return sign * rng.uniform(55, 125)
    return sign * rng.uniform(125, 180)


def _roll(rng: np.random.Generator) -> float:
    # Most people are upright; a few lie down or are upside-down (acrobatics, falls).
    return float(rng.normal(0, 6)) if rng.random() < 0.9 else float(rng.uniform(-100, 100))


@dataclass
class _Body:
    """A posed body in its own frame (x: person's left, y: up, z: facing direction)."""

    joints: np.ndarray  # (17, 3)
    face_normals: dict[int, np.ndarray]  # keypoint id -> outward unit normal on the head
    head_center: np.ndarray
    head_axes: np.ndarray  # (3, 3) head rotation
    shoulder_center: np.ndarray
    hand_tips: dict[int, np.ndarray]  # side (+1 left, -1 right) -> point
    toes: dict[int, np.ndarray]
    torso_centers: np.ndarray  # (N, 3) spheres whose hull is the torso
    torso_radii: np.ndarray  # (N,)
    lengths: dict[str, float]
    thickness: float


def _kp(name: str) -> int:
    return KEYPOINT_NAMES.index(name)


def _side_name(side: int) -> str:
    return "left" if side > 0 else "right"


def _sample_body(rng: np.random.Generator) -> _Body:
    lengths = {k: v * rng.uniform(0.92, 1.08) for k, v in _LENGTHS.items()}
    thickness = rng.uniform(0.85, 1.2)
    family = str(
        rng.choice(["stand", "walk", "sit", "crouch", "active"], p=[0.35, 0.25, 0.12, 0.08, 0.2])
    )
    lean = {"sit": rng.uniform(-10, 20), "crouch": rng.uniform(15, 45)}.get(
        family, rng.uniform(-8, 15)
    )
    joints = np.zeros((NUM_KEYPOINTS, 3))
    pelvis = np.zeros(3)
    torso = _rot_x(lean) @ _rot_z(rng.normal(0, 6))
    chest = torso @ _rot_y(rng.normal(0, 12))
    shoulder_center = pelvis + torso @ (_UP * lengths["torso"])

    centers, radii = [shoulder_center], [0.05]
    hand_tips, toes = {}, {}
    legs = _leg_angles(rng, family)
    swing = rng.uniform(5, 30) if family == "walk" else 0.0
    for side, leg in zip((1, -1), legs, strict=True):
        name = _side_name(side)
        hip = pelvis + np.array([side * lengths["hip_half"], 0.0, 0.0])
        thigh = _rot_z(side * leg["abd"]) @ _rot_x(-leg["flex"])
        shin = thigh @ _rot_x(leg["knee"])
        knee = hip + thigh @ (_DOWN * lengths["thigh"])
        ankle = knee + shin @ (_DOWN * lengths["shin"])
        foot_dir = shin @ np.array([0.0, -0.35, 1.0]) / math.hypot(0.35, 1.0)
        toes[side] = ankle + foot_dir * lengths["foot"]
        joints[_kp(f"{name}_hip")], joints[_kp(f"{name}_knee")] = hip, knee
        joints[_kp(f"{name}_ankle")] = ankle
        centers.append(hip + np.array([side * 0.01, -0.015, 0.0]))
        radii.append(0.06)

        arm = _arm_angles(rng, family)
        # Walkers swing each arm against the leg on the same side.
        flex = arm["flex"] - swing * np.sign(leg["flex"]) if swing else arm["flex"]
        shoulder = shoulder_center + chest @ np.array([side * lengths["shoulder_half"], 0.0, 0.0])
        upper = chest @ _rot_z(side * arm["abd"]) @ _rot_x(-flex) @ _rot_y(side * arm["twist"])
        fore = upper @ _rot_x(-arm["elbow"])
        elbow = shoulder + upper @ (_DOWN * lengths["upper_arm"])
        wrist = elbow + fore @ (_DOWN * lengths["forearm"])
        hand_tips[side] = wrist + fore @ _rot_x(-arm["wrist"]) @ (_DOWN * lengths["hand"])
        joints[_kp(f"{name}_shoulder")], joints[_kp(f"{name}_elbow")] = shoulder, elbow
        joints[_kp(f"{name}_wrist")] = wrist
        centers.append(shoulder + chest @ np.array([-side * 0.01, 0.0, 0.0]))
        radii.append(0.042)
        centers.append(pelvis + torso @ np.array([side * 0.07, 0.5 * lengths["torso"], 0.0]))
        radii.append(0.055)

    head_r = lengths["head"]
    head_center = shoulder_center + chest @ (_UP * (lengths["neck"] + head_r))
    head_axes = (
        chest
        @ _rot_y(float(np.clip(rng.normal(0, 25), -70, 70)))
        @ _rot_x(rng.normal(5, 12))
        @ _rot_z(rng.normal(0, 8))
    )
    face_dirs = {
        "nose": (np.array([0.0, -0.25, 1.0]), 1.08),
        "left_eye": (np.array([0.38, 0.18, 0.9]), 1.0),
        "right_eye": (np.array([-0.38, 0.18, 0.9]), 1.0),
        "left_ear": (np.array([1.0, 0.0, -0.15]), 1.0),
        "right_ear": (np.array([-1.0, 0.0, -0.15]), 1.0),
    }
    face_normals = {}
    for name, (direction, reach) in face_dirs.items():
        normal = head_axes @ (direction / np.linalg.norm(direction))
        face_normals[_kp(name)] = normal
        joints[_kp(name)] = head_center + normal * head_r * reach
    return _Body(
        joints=joints,
        face_normals=face_normals,
        head_center=head_center,
        head_axes=head_axes,
        shoulder_center=shoulder_center,
        hand_tips=hand_tips,
        toes=toes,
        torso_centers=np.array(centers),
        torso_radii=np.array(radii) * thickness,
        lengths=lengths,
        thickness=thickness,
    )


# --------------------------------------------------------------------------- people


# Face points count as facing the camera above these normal.z values; ears stick out, so a
# slightly turned-away ear is still seen at the head's outline.
_FACE_FACING_MIN = {"nose": 0.15, "eye": 0.15, "ear": -0.35}


@dataclass
class _Person:
    body: _Body
    outfit: dict[str, Any]
    view: np.ndarray  # (3, 3) body -> camera rotation
    roll_deg: float
    height_px: float
    origin: np.ndarray  # image position of the pelvis

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Body-frame points (..., 3) -> image pixels (..., 2) and depth (toward the camera)."""
        cam = np.asarray(points) @ self.view.T
        c, s = math.cos(math.radians(self.roll_deg)), math.sin(math.radians(self.roll_deg))
        xy = np.stack([cam[..., 0], -cam[..., 1]], axis=-1) @ np.array([[c, s], [-s, c]])
        return xy * self.height_px + self.origin, cam[..., 2]

    def turned_away(self) -> np.ndarray:
        out = np.zeros(NUM_KEYPOINTS, dtype=bool)
        for idx, normal in self.body.face_normals.items():
            kind = KEYPOINT_NAMES[idx].rsplit("_", 1)[-1]
            out[idx] = float((self.view @ normal)[2]) <= _FACE_FACING_MIN[kind]
        return out


def _place_people(rng: np.random.Generator, image_size: tuple[int, int], count: int):
    width, height = image_size
    people = []
    for _ in range(count):
        body = _sample_body(rng)
        view = _rot_x(rng.uniform(-10, 25)) @ _rot_y(_view_yaw(rng))
        person = _Person(
            body=body,
            outfit=_outfit(rng),
            view=view,
            roll_deg=_roll(rng),
            # Log-uniform heights: from COCO-"small" people to ones larger than the frame.
            height_px=float(height * math.exp(rng.uniform(math.log(0.25), math.log(1.3)))),
            origin=np.zeros(2),
        )
        extent, _ = person.project(np.concatenate([body.joints, body.torso_centers]))
        lo, hi = extent.min(axis=0), extent.max(axis=0)
        truncate = rng.random() < 0.2
        origin = []
        for axis, size in enumerate((width, height)):
            span = hi[axis] - lo[axis]
            first, last = -lo[axis], size - hi[axis]  # keeps the whole person inside
            if truncate:
                first, last = first - 0.45 * span, last + 0.45 * span
            origin.append(rng.uniform(min(first, last), max(first, last)))
        person.origin = np.array(origin)
        people.append(person)
    # Larger people are closer to the camera: draw them last.
    people.sort(key=lambda p: p.height_px)
    return people


def _limb_primitive(
    person: _Person,
    part: Part,
    a3: np.ndarray,
    b3: np.ndarray,
    radii: tuple[float, float],
    colour: np.ndarray,
    marks: Sequence[int] = (),
) -> _Primitive:
    (a, b), depth = person.project(np.stack([a3, b3]))
    scale = person.height_px * person.body.thickness
    ra, rb = radii[0] * scale, radii[1] * scale
    shapes = [
        _Shape(_capsule(a, b, ra, rb), _shade(colour, 1.0)),
        # Image-only details inside the silhouette: a highlight along the limb axis and a
        # darker cap on the joint ends named in `marks` (elbows, knees), like clothing folds.
        _Shape(_capsule(a, b, 0.4 * ra, 0.4 * rb), _shade(colour, 1.12, 18), labelled=False),
    ]
    ends = (a, b)
    for end in marks:
        shapes.append(
            _Shape(_disc(ends[end], 0.75 * min(ra, rb)), _shade(colour, 0.78), labelled=False)
        )
    return _Primitive(float(depth.mean()), part, shapes)


def _head_primitive(person: _Person, turned_away: np.ndarray) -> _Primitive:
    body, outfit = person.body, person.outfit
    r3 = body.lengths["head"]
    r = r3 * person.height_px
    centers, depths = person.project(
        np.stack(
            [
                body.head_center + body.head_axes @ np.array([0.0, 0.3, -0.45]) * r3,  # hair
                body.head_center + body.head_axes @ np.array([0.0, -0.08, 0.45]) * r3,  # face
                body.head_center,
            ]
        )
    )
    hair = _Shape(_disc(centers[0], 0.92 * r), _shade(outfit["hair"], 1.0))
    face = _Shape(_disc(centers[1], 0.85 * r), _shade(outfit["skin"], 1.0))
    shapes = [hair, face] if depths[1] > depths[0] else [face, hair]
    points, _ = person.project(body.joints[list(_FACE_IDS)])
    for idx, point in zip(_FACE_IDS, points, strict=True):
        if turned_away[idx]:
            continue
        name = KEYPOINT_NAMES[idx]
        if name == "nose":
            shapes.append(_Shape(_disc(point, max(0.17 * r, 0.7)), _shade(outfit["skin"], 0.75)))
        elif name.endswith("eye"):
            shapes.append(_Shape(_disc(point, max(0.13 * r, 0.6)), (30.0, 25.0, 20.0)))
        else:
            side = 1 if name.startswith("left") else -1
            ear = _tint(outfit["skin"] * 0.9, side)
            shapes.append(
                _Shape(_disc(point, max(0.2 * r, 0.8), max(0.3 * r, 1.0)), _shade(ear, 1))
            )
    return _Primitive(float(depths[2]), Part.HEAD, shapes)


def _person_primitives(person: _Person, turned_away: np.ndarray) -> list[_Primitive]:
    body, outfit = person.body, person.outfit
    j = body.joints
    centers, depths = person.project(body.torso_centers)
    ring = centers[:, None, :] + body.torso_radii[:, None, None] * person.height_px * _UNIT_CIRCLE
    torso_hull = cv2.convexHull(ring.reshape(-1, 2).astype(np.float32))[:, 0, :]
    prims = [
        _Primitive(
            float(depths.mean()),
            Part.TORSO,
            [_Shape(torso_hull.astype(np.float64), _shade(outfit["shirt"], 1.0))],
        )
    ]
    for side in (1, -1):
        name = _side_name(side)
        up = name.upper()
        sleeve = outfit["sleeve"] if outfit["sleeve"] is not None else outfit["skin"]
        legs = outfit["trouser_legs"] if outfit["trouser_legs"] is not None else outfit["skin"]
        limbs = [
            ("UPPER_ARM", "shoulder", "elbow", "upper_arm", outfit["shirt"], (1,)),
            ("FOREARM", "elbow", "wrist", "forearm", sleeve, (0,)),
            ("THIGH", "hip", "knee", "thigh", outfit["trousers"], (1,)),
            ("SHIN", "knee", "ankle", "shin", legs, (0,)),
        ]
        for part, start, end, radii, colour, marks in limbs:
            prims.append(
                _limb_primitive(
                    person,
                    Part[f"{up}_{part}"],
                    j[_kp(f"{name}_{start}")],
                    j[_kp(f"{name}_{end}")],
                    _RADII[radii],
                    _tint(colour, side),
                    marks,
                )
            )
        wrist, ankle = j[_kp(f"{name}_wrist")], j[_kp(f"{name}_ankle")]
        prims.append(
            _limb_primitive(person, Part[f"{up}_HAND"], wrist, body.hand_tips[side],
                            _RADII["hand"], _tint(outfit["skin"], side))
        )  # fmt: skip
        prims.append(
            _limb_primitive(person, Part[f"{up}_FOOT"], ankle, body.toes[side],
                            _RADII["foot"], _tint(outfit["shoes"], side))
        )  # fmt: skip
    head = _head_primitive(person, turned_away)
    neck = _limb_primitive(
        person, Part.NECK, body.shoulder_center, body.head_center, _RADII["neck"], outfit["skin"]
    )
    neck.depth = min(neck.depth, head.depth) - 1e-6  # the neck never covers the head
    prims.extend([neck, head])
    # Stable sort: on equal depth the limbs (listed after the torso) stay in front of it.
    return sorted(prims, key=lambda p: p.depth)


# --------------------------------------------------------------------------- scene


def _background(rng: np.random.Generator, image_size: tuple[int, int]) -> np.ndarray:
    width, height = image_size
    # Smooth colour variation around one scene tone (walls, floors, sky), not a rainbow.
    tone = _hsv_colour(rng, (0.05, 0.6), (0.25, 0.9))
    grid_shape = (int(rng.integers(2, 7)), int(rng.integers(2, 7)), 1)
    grid = tone + rng.normal(0, 35, grid_shape) + rng.normal(0, 15, (*grid_shape[:2], 3))
    image = cv2.resize(grid.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    image = np.ascontiguousarray(np.clip(image, 0, 255))
    for _ in range(int(rng.integers(6, 25))):
        colour = _shade(_hsv_colour(rng, (0, 1), (0.1, 1)), 1.0)
        kind = rng.integers(4)
        center = rng.uniform((0, 0), (width, height))
        size = rng.uniform(0.03, 0.35) * width
        if kind == 0:  # box, sometimes striped
            box = (tuple(center), (size, size * rng.uniform(0.2, 3)), rng.uniform(0, 180))
            _fill(image, cv2.boxPoints(box).astype(np.float64), colour)
            if rng.random() < 0.4:
                stripe = _shade(np.array(colour), rng.uniform(0.5, 0.8))
                top, bottom = int(center[1] - size / 2), int(center[1] + size / 2)
                for x in range(
                    int(center[0] - size), int(center[0] + size), int(rng.integers(3, 9))
                ):
                    cv2.line(image, (x, top), (x, bottom), stripe, 1)
        elif kind == 1:
            axes = (size / 2, size * rng.uniform(0.1, 0.6))
            _fill(image, _disc(center, *axes, rng.uniform(0, np.pi)), colour)
        elif kind == 2:
            end = np.round(center + rng.normal(0, size, 2)).astype(int)
            start = np.round(center).astype(int)
            cv2.line(
                image, tuple(start.tolist()), tuple(end.tolist()), colour, int(rng.integers(1, 6))
            )
        else:  # limb-like distractor in a skin or cloth colour
            skin = _SKIN_TONES[rng.integers(len(_SKIN_TONES))]
            tone = skin if rng.random() < 0.5 else np.array(colour)
            end = center + rng.normal(0, size / 2, 2)
            _fill(image, _capsule(center, end, size * 0.12, size * 0.09), _shade(tone, 1.0))
    return image


def _draw_occluders(
    rng: np.random.Generator,
    image: np.ndarray,
    labels: np.ndarray,
    parts: np.ndarray,
    people: list[_Person],
) -> None:
    """Objects in front of people, aimed near a random joint so that they do hide some."""
    for _ in range(int(rng.choice(3, p=[0.55, 0.3, 0.15]))):
        target = people[int(rng.integers(len(people)))]
        joints, _ = target.project(target.body.joints)
        center = joints[int(rng.integers(NUM_KEYPOINTS))] + rng.normal(0, 0.1 * target.height_px, 2)
        size = rng.uniform(0.1, 0.45) * target.height_px
        if rng.random() < 0.6:  # posts, boxes, signs
            box = (tuple(center), (size * rng.uniform(0.15, 1), size), rng.uniform(-20, 20))
            poly = cv2.boxPoints(box)
            poly = poly.astype(np.float64)
        else:  # balls, bags, bushes
            poly = _disc(center, size / 2, size * rng.uniform(0.25, 0.5), rng.uniform(0, np.pi))
        colour = _hsv_colour(rng, (0, 0.9), (0.2, 0.95))
        _fill(image, poly, _shade(colour, 1.0))
        _fill(labels, poly, OCCLUDER_LABEL)
        _fill(parts, poly, int(Part.NONE))
        inner = center + (poly - center) * 0.6
        _fill(image, inner, _shade(colour, rng.uniform(0.7, 1.2)))  # inside: image only


def _photometric(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    # A smooth illumination ramp, sensor noise and sometimes a little defocus.
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.arange(width)[None, :] - width / 2) * math.cos(angle) + (
        np.arange(height)[:, None] - height / 2
    ) * math.sin(angle)
    gain = 1.0 + rng.uniform(0, 0.5) * ramp / max(width, height)
    image = image * (gain[..., None] * rng.uniform(0.75, 1.15)).astype(np.float32)
    image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(rng.uniform(2, 9))
    if rng.random() < 0.3:
        image = cv2.GaussianBlur(image, (3, 3), 0)
    return np.clip(image, 0, 255).astype(np.uint8)


def _keypoint_pixels(keypoints: np.ndarray) -> np.ndarray:
    """Pixel (column, row) under each keypoint: pixel centres sit at integer coordinates."""
    return np.floor(keypoints + 0.5).astype(np.int64)


def _annotate(
    person: _Person,
    label: int,
    labels: np.ndarray,
    parts: np.ndarray,
    turned_away: np.ndarray,
    min_area: int,
) -> RenderedPerson:
    height, width = labels.shape
    keypoints, _ = person.project(person.body.joints)
    # Quantise first so the flags below are exactly those of the numbers written to the JSON.
    keypoints = np.round(keypoints, 2)
    inside = (
        (keypoints[:, 0] >= 0)
        & (keypoints[:, 0] <= width - 1)
        & (keypoints[:, 1] >= 0)
        & (keypoints[:, 1] <= height - 1)
    )
    visibility = np.zeros(NUM_KEYPOINTS, dtype=np.uint8)
    cols, rows = _keypoint_pixels(np.where(inside[:, None], keypoints, 0)).T
    for k in np.flatnonzero(inside & ~turned_away):
        shows = labels[rows[k], cols[k]] == label and parts[rows[k], cols[k]] in KEYPOINT_PARTS[k]
        visibility[k] = 2 if shows else 1
    keypoints[visibility == 0] = 0.0
    ys, xs = np.nonzero(labels == label)
    area = int(xs.size)
    bbox = None
    if area:
        x0, y0 = int(xs.min()), int(ys.min())
        bbox = (float(x0), float(y0), float(xs.max() - x0 + 1), float(ys.max() - y0 + 1))
    return RenderedPerson(
        label=label,
        keypoints_img=keypoints,
        visibility=visibility,
        turned_away=turned_away,
        area=area,
        bbox_xywh=bbox,
        height_px=person.height_px,
        annotated=bool(np.count_nonzero(visibility) >= MIN_KEYPOINTS and area >= min_area),
    )


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator that renders image `index` of `split` (independent of chunking)."""
    return np.random.default_rng([seed, SPLITS.index(split), index, 0])


def render_image(
    rng: np.random.Generator,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    max_people: int = DEFAULT_MAX_PEOPLE,
    min_area: int = MIN_AREA,
) -> RenderedImage:
    """Draw one scene; returns the image, its label and part buffers and the drawn people."""
    width, height = image_size
    image = _background(rng, image_size)
    labels = np.zeros((height, width), dtype=np.uint8)
    parts = np.zeros((height, width), dtype=np.uint8)
    weights = np.arange(max_people, 0, -1, dtype=np.float64)
    count = 1 + int(rng.choice(max_people, p=weights / weights.sum()))
    people = _place_people(rng, image_size, count)
    away = [p.turned_away() for p in people]
    for label, (person, turned_away) in enumerate(zip(people, away, strict=True), start=1):
        for prim in _person_primitives(person, turned_away):
            for shape in prim.shapes:
                _fill(image, shape.points, shape.colour)
                if shape.labelled:
                    _fill(labels, shape.points, label)
                    _fill(parts, shape.points, int(prim.part))
    _draw_occluders(rng, image, labels, parts, people)
    image = _photometric(rng, image)
    rendered = [
        _annotate(p, label, labels, parts, a, min_area)
        for label, (p, a) in enumerate(zip(people, away, strict=True), start=1)
    ]
    return RenderedImage(image=image, labels=labels, parts=parts, people=rendered)


# --------------------------------------------------------------------------- COCO records


def _detections(
    rng: np.random.Generator, image_id: int, people: list[RenderedPerson], image_size
) -> list[dict[str, Any]]:
    """Jittered GT boxes (sometimes twice, like an un-suppressed detector) and false positives."""
    width, height = image_size
    boxes: list[tuple[np.ndarray, float]] = []
    for person in people:
        x, y, w, h = person.bbox_xywh
        for attempt in range(2 if rng.random() < 0.15 else 1):
            spread = 0.04 if attempt == 0 else 0.12
            center = np.array([x + w / 2, y + h / 2]) + rng.normal(0, spread, 2) * (w, h)
            size = np.array([w, h]) * np.exp(rng.normal(0, spread * 1.5, 2))
            score = rng.uniform(0.7, 1.0) if attempt == 0 else rng.uniform(0.05, 0.4)
            boxes.append((np.concatenate([center - size / 2, center + size / 2]), score))
    for _ in range(int(rng.poisson(0.5))):
        h = rng.uniform(0.15, 0.8) * height
        w = h * rng.uniform(0.3, 0.9)
        x0, y0 = rng.uniform(0, width - w), rng.uniform(0, height - h)
        boxes.append((np.array([x0, y0, x0 + w, y0 + h]), rng.uniform(0.01, 0.3)))
    out = []
    for xyxy, score in boxes:
        x0, x1 = np.clip(xyxy[[0, 2]], 0, width)
        y0, y1 = np.clip(xyxy[[1, 3]], 0, height)
        if x1 - x0 < 1 or y1 - y0 < 1:
            continue
        out.append(
            {
                "image_id": image_id,
                "category_id": 1,
                "bbox": [round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)],
                "score": round(float(score), 4),
            }
        )
    return out


def _annotation(person: RenderedPerson, image_id: int, ann_id: int) -> dict[str, Any]:
    keypoints = np.concatenate([person.keypoints_img, person.visibility[:, None]], axis=1)
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "iscrowd": 0,
        "keypoints": [
            round(float(v), 2) if i % 3 != 2 else int(v) for i, v in enumerate(keypoints.ravel())
        ],
        "num_keypoints": person.num_keypoints,
        "bbox": list(person.bbox_xywh),
        "area": float(person.area),
    }


def _image_id(split: str, index: int) -> int:
    return SPLITS.index(split) * MAX_IMAGES_PER_SPLIT + index + 1


def _render_chunk(
    indices: Sequence[int],
    root: str,
    split: str,
    seed: int,
    image_size: tuple[int, int],
    max_people: int,
    min_area: int,
) -> list[tuple[dict, list[dict], list[dict], int]]:
    """Render and write some images; their image record, annotations, detections, people."""
    cv2.setNumThreads(1)  # the pool already uses every core
    folder = Path(root) / f"{split}2017"
    results = []
    for index in indices:
        image_id = _image_id(split, index)
        rendered = render_image(image_rng(seed, split, index), image_size, max_people, min_area)
        file_name = f"{image_id:012d}.jpg"
        if not cv2.imwrite(
            str(folder / file_name), rendered.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        ):
            raise OSError(f"could not write {folder / file_name}")
        annotated = [p for p in rendered.people if p.annotated]
        record = {
            "id": image_id,
            "file_name": file_name,
            "width": image_size[0],
            "height": image_size[1],
        }
        anns = [_annotation(p, image_id, image_id * 100 + k) for k, p in enumerate(annotated)]
        dets = []
        if split == "val":
            det_rng = np.random.default_rng([seed, SPLITS.index(split), index, 1])
            dets = _detections(det_rng, image_id, annotated, image_size)
        results.append((record, anns, dets, len(rendered.people)))
    return results


def _write_json(path: Path, obj: Any) -> None:
    # Written beside and renamed, so a reader never sees half a file.
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(obj, sort_keys=True, separators=(",", ":")))
    os.replace(tmp, path)


def _check_args(num_train, num_val, image_size, seed, max_people, min_area) -> tuple[int, int]:
    for name, value in (("num_train", num_train), ("num_val", num_val)):
        if not 0 < value <= MAX_IMAGES_PER_SPLIT - 1:
            raise ValueError(f"{name}={value}: expected 1..{MAX_IMAGES_PER_SPLIT - 1} images")
    if len(image_size) != 2 or min(image_size) < 32:
        raise ValueError(f"image_size={image_size!r}: expected (width, height), each >= 32 px")
    if seed < 0:
        raise ValueError(f"seed={seed}: expected a non-negative integer")
    if not 1 <= max_people <= MAX_PEOPLE_LIMIT:
        raise ValueError(f"max_people={max_people}: expected 1..{MAX_PEOPLE_LIMIT}")
    if min_area < 1:
        raise ValueError(f"min_area={min_area}: expected >= 1 pixel")
    return int(image_size[0]), int(image_size[1])


_SETTINGS = ("num_train", "num_val", "image_size", "seed", "max_people", "min_area")


def _settings(num_train, num_val, image_size, seed, max_people, min_area) -> dict[str, Any]:
    """What determines the dataset's content, as stored in (and compared with) its `info`."""
    return {
        "num_train": int(num_train),
        "num_val": int(num_val),
        "image_size": [int(v) for v in image_size],
        "seed": int(seed),
        "max_people": int(max_people),
        "min_area": int(min_area),
    }


def generate(
    root: str | Path,
    num_train: int = DEFAULT_NUM_TRAIN,
    num_val: int = DEFAULT_NUM_VAL,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    seed: int = 0,
    max_people: int = DEFAULT_MAX_PEOPLE,
    min_area: int = MIN_AREA,
    workers: int | None = None,
) -> Path:
    """Render a synthetic dataset into `root` in the COCO 2017 layout; returns `root`.

    `workers` processes render in parallel (default: every CPU core, but one per 200 images);
    the output does not depend on it. The val annotation file is written last, so its
    presence marks a complete dataset.
    """
    image_size = _check_args(num_train, num_val, image_size, seed, max_people, min_area)
    root = Path(root)
    if workers is None:
        # A spawned worker costs seconds to start; small sets render faster in-process.
        workers = min(os.cpu_count() or 1, max(1, (num_train + num_val) // 200))
    if workers < 1:
        raise ValueError(f"workers={workers}: expected >= 1")
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "person_detection_results").mkdir(parents=True, exist_ok=True)
    info = {
        "description": "mobilevitpose synthetic COCO people",
        **_settings(num_train, num_val, image_size, seed, max_people, min_area),
    }
    category = {
        "id": 1,
        "name": "person",
        "supercategory": "person",
        "keypoints": list(KEYPOINT_NAMES),
        "skeleton": [[a + 1, b + 1] for a, b in SKELETON],
    }
    start = time.perf_counter()
    # spawn: the caller may hold threads (torch, OpenCV) that a forked child would inherit locked.
    pool = (
        ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        if workers > 1
        else None
    )
    try:
        for split, count in (("train", num_train), ("val", num_val)):
            (root / f"{split}2017").mkdir(exist_ok=True)
            render = partial(
                _render_chunk,
                root=str(root),
                split=split,
                seed=seed,
                image_size=image_size,
                max_people=max_people,
                min_area=min_area,
            )
            step = max(1, math.ceil(count / (4 * workers)))
            index_chunks = [range(i, min(i + step, count)) for i in range(0, count, step)]
            chunks = pool.map(render, index_chunks) if pool else map(render, index_chunks)
            results = [r for chunk_results in chunks for r in chunk_results]
            images = [r[0] for r in results]
            annotations = [a for r in results for a in r[1]]
            drawn = sum(r[3] for r in results)
            dataset = {
                "info": {**info, "split": split},
                "licenses": [],
                "images": images,
                "annotations": annotations,
                "categories": [category],
            }
            if split == "val":
                detections = [d for r in results for d in r[2]]
                _write_json(root / "person_detection_results" / DETECTIONS_FILE, detections)
            _write_json(root / "annotations" / f"person_keypoints_{split}2017.json", dataset)
            log.info(
                "%s: %d images, %d annotated of %d drawn people",
                split, len(images), len(annotations), drawn,
            )  # fmt: skip
    finally:
        if pool:
            pool.shutdown()
    log.info("synthetic dataset in %s (%.1f s)", root, time.perf_counter() - start)
    return root


def ensure_dataset(root: str | Path, **kwargs: Any) -> Path:
    """Generate the dataset into `root` unless a complete one is already there (left untouched)."""
    root = Path(root)
    marker = root / "annotations" / "person_keypoints_val2017.json"
    if not marker.is_file():
        return generate(root, **kwargs)
    log.info("using the synthetic dataset already in %s", root)
    defaults = {
        name: param.default
        for name, param in inspect.signature(generate).parameters.items()
        if name in _SETTINGS
    }
    wanted = _settings(**{**defaults, **{k: v for k, v in kwargs.items() if k in _SETTINGS}})
    stored = json.loads(marker.read_text()).get("info", {})
    changed = sorted(k for k, v in wanted.items() if stored.get(k) != v)
    if changed:
        log.warning(
            "%s was generated with other settings (%s); delete it to regenerate",
            root, ", ".join(f"{k}: {stored.get(k)} -> {wanted[k]}" for k in changed),
        )  # fmt: skip
    return root


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="mvp-synth", description="Render synthetic COCO people in the COCO 2017 layout."
    )
    parser.add_argument("root", type=Path, help="output folder")
    parser.add_argument("--num-train", type=int, default=DEFAULT_NUM_TRAIN)
    parser.add_argument("--num-val", type=int, default=DEFAULT_NUM_VAL)
    parser.add_argument("--width", type=int, default=DEFAULT_IMAGE_SIZE[0])
    parser.add_argument("--height", type=int, default=DEFAULT_IMAGE_SIZE[1])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-people", type=int, default=DEFAULT_MAX_PEOPLE)
    parser.add_argument("--min-area", type=int, default=MIN_AREA)
    parser.add_argument(
        "--workers", type=int, default=None, help="default: all cores, one per 200 images"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        generate(
            args.root,
            num_train=args.num_train,
            num_val=args.num_val,
            image_size=(args.width, args.height),
            seed=args.seed,
            max_people=args.max_people,
            min_area=args.min_area,
            workers=args.workers,
        )
    except ValueError as err:
        parser.error(str(err))


if __name__ == "__main__":
    main()
