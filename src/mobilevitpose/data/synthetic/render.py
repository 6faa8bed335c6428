"""Drawing one synthetic scene, and reading its annotation off the pixels.

A scene is a background, a few people from the body model (`body`), objects in front of them,
and photometric noise. Projection gives each part a depth, so the parts of all people are
painted back to front (painter's algorithm): limbs are tapered capsules, the torso is the
convex hull of a few spheres (shoulders, waist, hips), the head is a hair disc plus a face disc
with eyes, nose and ears.

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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from mobilevitpose.coco import SPLITS
from mobilevitpose.data.synthetic.body import (
    FACE_IDS,
    KEYPOINT_PARTS,
    RADII,
    SKIN_TONES,
    Part,
    Person,
    hsv_colour,
    keypoint_index,
    place_people,
    side_name,
)
from mobilevitpose.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS

OCCLUDER_LABEL = 255
MIN_KEYPOINTS = 3
# COCO's "small" objects (area < 32^2) essentially carry no keypoint annotations.
MIN_AREA = 32 * 32
DEFAULT_IMAGE_SIZE = (320, 256)
DEFAULT_MAX_PEOPLE = 4
# The chest emblem shows above this cosine between the chest's facing and the view direction.
EMBLEM_FACING_MIN = 0.15

# Fixed-point bits for OpenCV's sub-pixel polygon filling.
_SHIFT = 4
_ONE = 1 << _SHIFT
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
        """The labelled (v > 0) keypoints, as COCO counts them."""
        return int(np.count_nonzero(self.visibility))


@dataclass(frozen=True)
class RenderedImage:
    """One drawn scene: the image, its label and part buffers, and the people in it."""

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
    """The shapes of one body part, painted together at the part's depth."""

    depth: float
    part: Part
    shapes: list[_Shape]


# --------------------------------------------------------------------------- shapes


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


def _shade(colour: np.ndarray, factor: float, offset: float = 0.0) -> tuple[float, float, float]:
    out = np.clip(colour * factor + offset, 0, 255)
    return (float(out[0]), float(out[1]), float(out[2]))


# --------------------------------------------------------------------------- people


def _limb_primitive(
    person: Person,
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


def _head_primitive(person: Person, turned_away: np.ndarray) -> _Primitive:
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
    points, _ = person.project(body.joints[list(FACE_IDS)])
    for idx, point in zip(FACE_IDS, points, strict=True):
        if turned_away[idx]:
            continue
        name = KEYPOINT_NAMES[idx]
        if name == "nose":
            shapes.append(_Shape(_disc(point, max(0.17 * r, 0.7)), _shade(outfit["skin"], 0.75)))
        elif name.endswith("eye"):
            shapes.append(_Shape(_disc(point, max(0.13 * r, 0.6)), (30.0, 25.0, 20.0)))
        else:
            ear = outfit["skin"] * 0.9
            shapes.append(
                _Shape(_disc(point, max(0.2 * r, 0.8), max(0.3 * r, 1.0)), _shade(ear, 1))
            )
    return _Primitive(float(depths[2]), Part.HEAD, shapes)


def chest_facing(person: Person) -> float:
    """Cosine between where the chest faces and the direction towards the camera."""
    return float((person.view @ person.body.chest_axes[:, 2])[2])


def chest_emblem(person: Person) -> list[_Shape]:
    """A round emblem on the front of the shirt, seen only while the chest faces the camera:
    with the face and the shirt's lighter front, what tells a person's front from their back,
    so left from right."""
    body = person.body
    facing = chest_facing(person)
    if facing <= EMBLEM_FACING_MIN:
        return []
    torso_length, radius = body.lengths["torso"], body.torso_radii[0]
    local = np.array([0.0, -0.3 * torso_length, radius])  # mid-chest, on the shirt's surface
    (center,), _ = person.project((body.shoulder_center + body.chest_axes @ local)[None])
    r = 0.7 * radius * person.height_px
    # Foreshortened across as the chest turns away; a contrasting shade of the shirt.
    shirt = person.outfit["shirt"]
    colour = shirt * 0.35 if shirt.mean() > 110 else shirt * 0.4 + 150
    return [_Shape(_disc(center, max(r * facing, 0.6), max(r, 0.6)), _shade(colour, 1.0))]


def _person_primitives(person: Person, turned_away: np.ndarray) -> list[_Primitive]:
    body, outfit = person.body, person.outfit
    j = body.joints
    centers, depths = person.project(body.torso_centers)
    ring = centers[:, None, :] + body.torso_radii[:, None, None] * person.height_px * _UNIT_CIRCLE
    torso_hull = cv2.convexHull(ring.reshape(-1, 2).astype(np.float32))[:, 0, :]
    # A two-tone shirt: its front lighter than its back, shaded by how far it faces the camera.
    front = 0.8 + 0.2 * chest_facing(person)
    torso = [_Shape(torso_hull.astype(np.float64), _shade(outfit["shirt"], front))]
    prims = [_Primitive(float(depths.mean()), Part.TORSO, torso + chest_emblem(person))]
    for side in (1, -1):
        name = side_name(side)
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
                    j[keypoint_index(f"{name}_{start}")],
                    j[keypoint_index(f"{name}_{end}")],
                    RADII[radii],
                    colour,
                    marks,
                )
            )
        wrist, ankle = j[keypoint_index(f"{name}_wrist")], j[keypoint_index(f"{name}_ankle")]
        prims.append(
            _limb_primitive(person, Part[f"{up}_HAND"], wrist, body.hand_tips[side],
                            RADII["hand"], outfit["skin"])
        )  # fmt: skip
        prims.append(
            _limb_primitive(person, Part[f"{up}_FOOT"], ankle, body.toes[side],
                            RADII["foot"], outfit["shoes"])
        )  # fmt: skip
    head = _head_primitive(person, turned_away)
    neck = _limb_primitive(
        person, Part.NECK, body.shoulder_center, body.head_center, RADII["neck"], outfit["skin"]
    )
    neck.depth = min(neck.depth, head.depth) - 1e-6  # the neck never covers the head
    prims.extend([neck, head])
    # Stable sort: on equal depth the limbs (listed after the torso) stay in front of it.
    return sorted(prims, key=lambda p: p.depth)


# --------------------------------------------------------------------------- scene


def _background(rng: np.random.Generator, image_size: tuple[int, int]) -> np.ndarray:
    width, height = image_size
    # Smooth colour variation around one scene tone (walls, floors, sky), not a rainbow.
    tone = hsv_colour(rng, (0.05, 0.6), (0.25, 0.9))
    grid_shape = (int(rng.integers(2, 7)), int(rng.integers(2, 7)), 1)
    grid = tone + rng.normal(0, 35, grid_shape) + rng.normal(0, 15, (*grid_shape[:2], 3))
    image = cv2.resize(grid.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    image = np.ascontiguousarray(np.clip(image, 0, 255))
    for _ in range(int(rng.integers(6, 25))):
        colour = _shade(hsv_colour(rng, (0, 1), (0.1, 1)), 1.0)
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
            skin = SKIN_TONES[rng.integers(len(SKIN_TONES))]
            tone = skin if rng.random() < 0.5 else np.array(colour)
            end = center + rng.normal(0, size / 2, 2)
            _fill(image, _capsule(center, end, size * 0.12, size * 0.09), _shade(tone, 1.0))
    return image


def _draw_occluders(
    rng: np.random.Generator,
    image: np.ndarray,
    labels: np.ndarray,
    parts: np.ndarray,
    people: list[Person],
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
        colour = hsv_colour(rng, (0, 0.9), (0.2, 0.95))
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


# --------------------------------------------------------------------------- annotation


def _keypoint_pixels(keypoints: np.ndarray) -> np.ndarray:
    """Pixel (column, row) under each keypoint: pixel centres sit at integer coordinates."""
    return np.floor(keypoints + 0.5).astype(np.int64)


def _annotate(
    person: Person,
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
    people = place_people(rng, image_size, count)
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
