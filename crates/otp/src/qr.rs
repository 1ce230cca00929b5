//! QR codes of `otpauth://` URIs, as SVG so a page or an API response can
//! carry them inline without an image library.

use qrcode::QrCode;
use qrcode::render::svg;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("text too long for a QR code")]
pub struct QrError;

/// An SVG document showing `text` as a QR code, at least 200 px square.
pub fn qr_svg(text: &str) -> Result<String, QrError> {
    let code = QrCode::new(text.as_bytes()).map_err(|_| QrError)?;
    Ok(code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_an_svg_document() {
        let svg = qr_svg("otpauth://totp/x?secret=GEZDGNBV").unwrap();
        assert!(svg.starts_with("<?xml"));
        assert!(svg.contains("<svg"));
        assert!(svg.contains("<path"));
    }

    #[test]
    fn different_text_gives_a_different_picture() {
        assert_ne!(
            qr_svg("otpauth://totp/a?secret=GEZDGNBV").unwrap(),
            qr_svg("otpauth://totp/b?secret=GEZDGNBV").unwrap()
        );
    }
}
