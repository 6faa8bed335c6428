"""The body model of the synthetic people: parts, proportions, colours, poses and placement.

Each person is a small 3D articulated body (pelvis, torso, neck, head, two arms and two legs)
built from anthropometric limb-length ratios and joint angles drawn inside anatomical limits
from a few pose families (standing, walking, sitting, crouching, active). The body is turned to
a random view (front, side, back), tilted by a random camera pitch and roll, and projected
orthographically, so every projected point also has a depth.

Left and right look alike, as on a real person; what tells them apart is which way the person
faces, read from cues a photo also has and a mirror image keeps consistent: a face (eyes,
nose) on the front of the head and hair on the back, and a shirt emblem on the front of the
chest. A mirrored person is then again a consistent person, with left and right swapped, so
horizontal flips and the flip test work as on COCO.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import cv2
import numpy as np

from mobilevitpose.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS


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
# The keypoints drawn on the head (nose, eyes, ears).
FACE_IDS = tuple(i for i, n in enumerate(KEYPOINT_NAMES) if n.endswith(("nose", "eye", "ear")))

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
RADII: dict[str, tuple[float, float]] = {  # (proximal, distal)
    "upper_arm": (0.034, 0.028),
    "forearm": (0.027, 0.021),
    "hand": (0.022, 0.02),
    "thigh": (0.055, 0.042),
    "shin": (0.04, 0.03),
    "foot": (0.026, 0.022),
    "neck": (0.028, 0.028),
}

SKIN_TONES = np.array(
    [[185, 205, 240], [150, 180, 225], [110, 150, 200], [80, 115, 165], [55, 80, 120]],
    dtype=np.float64,
)


# --------------------------------------------------------------------------- rotations


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


# --------------------------------------------------------------------------- colours


def hsv_colour(
    rng: np.random.Generator, sat: tuple[float, float], val: tuple[float, float]
) -> np.ndarray:
    """A random BGR colour of any hue, with saturation and value drawn from the given ranges."""
    hsv = np.array(
        [[[rng.uniform(0, 180), rng.uniform(*sat) * 255, rng.uniform(*val) * 255]]],
        dtype=np.uint8,
    )
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float64)


def _outfit(rng: np.random.Generator) -> dict[str, Any]:
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] + rng.uniform(-12, 12, 3)
    shirt = hsv_colour(rng, (0.15, 0.9), (0.3, 0.95))
    trousers = hsv_colour(rng, (0.1, 0.7), (0.15, 0.75))
    return {
        "skin": np.clip(skin, 0, 255),
        "hair": hsv_colour(rng, (0.2, 0.8), (0.05, 0.45)),
        "shirt": shirt,
        "sleeve": shirt if rng.random() < 0.5 else None,  # None: short sleeves
        "trousers": trousers,
        "trouser_legs": trousers if rng.random() < 0.8 else None,  # None: shorts
        "shoes": hsv_colour(rng, (0.0, 0.6), (0.05, 0.5)),
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
class Body:
    """A posed body in its own frame (x: person's left, y: up, z: facing direction)."""

    joints: np.ndarray  # (17, 3)
    face_normals: dict[int, np.ndarray]  # keypoint id -> outward unit normal on the head
    head_center: np.ndarray
    head_axes: np.ndarray  # (3, 3) head rotation
    shoulder_center: np.ndarray
    hand_tips: dict[int, np.ndarray]  # side (+1 left, -1 right) -> point
    toes: dict[int, np.ndarray]
    torso_centers: np.ndarray  # (N, 3) spheres whose hull is the torso
    chest_axes: np.ndarray  # (3, 3) the chest's rotation: its z axis is where the chest faces
    torso_radii: np.ndarray  # (N,)
    lengths: dict[str, float]
    thickness: float


def keypoint_index(name: str) -> int:
    """Index of a COCO keypoint name in `KEYPOINT_NAMES`."""
    return KEYPOINT_NAMES.index(name)


def side_name(side: int) -> str:
    """The keypoint-name prefix of a body side: +1 "left", -1 "right"."""
    return "left" if side > 0 else "right"


def _sample_body(rng: np.random.Generator) -> Body:
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
        name = side_name(side)
        hip = pelvis + np.array([side * lengths["hip_half"], 0.0, 0.0])
        thigh = _rot_z(side * leg["abd"]) @ _rot_x(-leg["flex"])
        shin = thigh @ _rot_x(leg["knee"])
        knee = hip + thigh @ (_DOWN * lengths["thigh"])
        ankle = knee + shin @ (_DOWN * lengths["shin"])
        foot_dir = shin @ np.array([0.0, -0.35, 1.0]) / math.hypot(0.35, 1.0)
        toes[side] = ankle + foot_dir * lengths["foot"]
        for joint, point in (("hip", hip), ("knee", knee), ("ankle", ankle)):
            joints[keypoint_index(f"{name}_{joint}")] = point
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
        for joint, point in (("shoulder", shoulder), ("elbow", elbow), ("wrist", wrist)):
            joints[keypoint_index(f"{name}_{joint}")] = point
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
        face_normals[keypoint_index(name)] = normal
        joints[keypoint_index(name)] = head_center + normal * head_r * reach
    return Body(
        joints=joints,
        face_normals=face_normals,
        head_center=head_center,
        head_axes=head_axes,
        shoulder_center=shoulder_center,
        hand_tips=hand_tips,
        toes=toes,
        torso_centers=np.array(centers),
        chest_axes=chest,
        torso_radii=np.array(radii) * thickness,
        lengths=lengths,
        thickness=thickness,
    )


# --------------------------------------------------------------------------- people


# Face points count as facing the camera above these normal.z values; ears stick out, so a
# slightly turned-away ear is still seen at the head's outline.
_FACE_FACING_MIN = {"nose": 0.15, "eye": 0.15, "ear": -0.35}


@dataclass
class Person:
    """A posed body seen from a camera: its view, image scale and position, and clothes."""

    body: Body
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
        """(17,) bool: the face points on the far side of the head (COCO leaves them out)."""
        out = np.zeros(NUM_KEYPOINTS, dtype=bool)
        for idx, normal in self.body.face_normals.items():
            kind = KEYPOINT_NAMES[idx].rsplit("_", 1)[-1]
            out[idx] = float((self.view @ normal)[2]) <= _FACE_FACING_MIN[kind]
        return out


def place_people(rng: np.random.Generator, image_size: tuple[int, int], count: int) -> list[Person]:
    """`count` posed, dressed people placed in the image, the farthest (smallest) first."""
    width, height = image_size
    people = []
    for _ in range(count):
        body = _sample_body(rng)
        view = _rot_x(rng.uniform(-10, 25)) @ _rot_y(_view_yaw(rng))
        person = Person(
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
