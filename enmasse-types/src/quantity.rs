//! Kubernetes quantities as the infra configs write sizes (`512Mi`, `2Gi`, `1G`, `1500`): read
//! as a number of bytes.

/// Why a quantity could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a quantity of bytes (a number with an optional Ki, Mi, Gi, Ti, k, M, G or T)")]
pub struct QuantityError(pub String);

/// The bytes `text` stands for, rounded down.
pub fn bytes(text: &str) -> Result<u64, QuantityError> {
    let invalid = || QuantityError(text.to_owned());
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let factor: u64 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return Err(invalid()),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return Err(invalid());
    }
    let whole: u64 = match whole {
        "" => 0,
        digits => digits.parse().map_err(|_| invalid())?,
    };
    let mut total = whole.checked_mul(factor).ok_or_else(invalid)?;
    // A fraction of the unit, to 9 digits: enough for any size a plan would name.
    if !fraction.is_empty() {
        let digits = &fraction[..fraction.len().min(9)];
        let scale = 10u64.pow(digits.len() as u32);
        let part: u64 = digits.parse().map_err(|_| invalid())?;
        total = total.saturating_add(
            u64::try_from(u128::from(part) * u128::from(factor) / u128::from(scale)).unwrap_or(u64::MAX),
        );
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_decimal_suffixes_and_fractions_read_as_bytes() {
        assert_eq!(bytes("512Mi"), Ok(512 << 20));
        assert_eq!(bytes("2Gi"), Ok(2 << 30));
        assert_eq!(bytes("1G"), Ok(1_000_000_000));
        assert_eq!(bytes("1500"), Ok(1500));
        assert_eq!(bytes("1.5Ki"), Ok(1536));
        assert_eq!(bytes("0.5"), Ok(0));
    }

    #[test]
    fn anything_else_is_refused_naming_it() {
        for bad in ["", "Mi", "12XB", "-1Gi", "1.2.3", ".", "99999999999999999999Ti"] {
            assert_eq!(bytes(bad), Err(QuantityError(bad.to_owned())), "{bad:?}");
        }
    }
}
