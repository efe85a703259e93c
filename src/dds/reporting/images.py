"""Figures as the report embeds them: each PNG re-encoded to the smallest of itself, a 256-colour
PNG and a lossless WebP (the page stays one light file), and shown at its printed size, its pixels
over its DPI at the browser's 96 CSS pixels per inch, so that a figure drawn at twice that DPI
stays sharp on a high-DPI screen."""

import base64
import io
from pathlib import Path

from PIL import Image

from dds.io import DataFileError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CSS_DPI = 96
# wider than this many times its height: the figure takes the whole width of the page
WIDE = 2.0


def _encodings(image: Image.Image):
    """(MIME type, bytes) of the candidate encodings of an opaque RGB image."""
    palette = image.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    for mime, picture, options in [
        ("image/png", palette, {"format": "PNG", "optimize": True}),
        ("image/webp", image, {"format": "WEBP", "lossless": True, "method": 6}),
    ]:
        out = io.BytesIO()
        picture.save(out, **options)
        yield mime, out.getvalue()


def embed(title: str, path_png, caption: str) -> dict:
    """The figure at `path_png` as the template shows it: title, caption, alt text, a data URI
    and its display width in CSS pixels; DataFileError when the file is missing or not a PNG."""
    path = Path(path_png)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataFileError(f"{path}: figure file not found") from None
    if not data.startswith(PNG_SIGNATURE):
        raise DataFileError(f"{path}: not a PNG file; the report embeds figures as PNG")
    with Image.open(io.BytesIO(data)) as image:
        dpi = float(image.info.get("dpi", (CSS_DPI,))[0]) or CSS_DPI
        rgba = image.convert("RGBA")
    # matplotlib's background is white: flatten any transparency onto it
    opaque = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    mime, best = min([("image/png", data), *_encodings(opaque)], key=lambda candidate: len(candidate[1]))
    return {
        "title": title,
        "caption": caption,
        "alt": f"{title}: {caption}",
        "src": f"data:{mime};base64,{base64.b64encode(best).decode('ascii')}",
        "width": round(rgba.width * CSS_DPI / dpi),
        "wide": rgba.width > WIDE * rgba.height,
    }
