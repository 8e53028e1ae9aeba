"""Tiny dataset trees in the real on-disk formats, built at test time.

* :func:`make_coco_tree`, :func:`write_coco_split`, :func:`write_jpeg`, :func:`category_colour`:
  from :mod:`clml_lib.data.synthetic` (the GPU check's smoke run uses them too).
* :func:`make_voc_tree`: ``root/VOCdevkit/VOC2007/{Annotations,ImageSets/Main,JPEGImages}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from clml_lib.data.synthetic import category_colour, make_coco_tree, write_coco_split, write_jpeg

__all__ = ["make_coco_tree", "write_coco_split", "make_voc_tree", "write_jpeg", "category_colour"]


def make_voc_tree(
    root: str | Path,
    objects: dict[str, Sequence[tuple[str, int]]],
    image_sets: dict[str, Sequence[str]],
    year: str = "2007",
    image_size: int = 40,
) -> Path:
    """Build ``root/VOCdevkit/VOC{year}`` with XML annotations, image sets and JPEGs.

    Args:
        objects: image id -> [(class name, difficult 0/1), ...].
        image_sets: set name -> image ids (written to ``ImageSets/Main/<name>.txt``).

    Returns:
        The ``VOC{year}`` folder.
    """
    voc = Path(root) / "VOCdevkit" / f"VOC{year}"
    (voc / "Annotations").mkdir(parents=True, exist_ok=True)
    (voc / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    for n, (img_id, objs) in enumerate(objects.items()):
        parts = [
            "<annotation>",
            f"  <folder>VOC{year}</folder>",
            f"  <filename>{img_id}.jpg</filename>",
            f"  <size><width>{image_size}</width><height>{image_size}</height>"
            "<depth>3</depth></size>",
        ]
        for name, difficult in objs:
            parts += [
                "  <object>",
                f"    <name>{name}</name>",
                "    <pose>Unspecified</pose>",
                "    <truncated>0</truncated>",
                f"    <difficult>{difficult}</difficult>",
                "    <bndbox><xmin>2</xmin><ymin>3</ymin><xmax>20</xmax><ymax>25</ymax></bndbox>",
                "  </object>",
            ]
        parts.append("</annotation>")
        (voc / "Annotations" / f"{img_id}.xml").write_text("\n".join(parts) + "\n")
        write_jpeg(voc / "JPEGImages" / f"{img_id}.jpg", image_size, seed=n)
    for set_name, ids in image_sets.items():
        (voc / "ImageSets" / "Main" / f"{set_name}.txt").write_text("".join(f"{i}\n" for i in ids))
    return voc
