//! Identifiers shaped like API Gateway's: 16 characters of base64
//! (`L0SM9cOFvHcCIhw=`), from 11 random bytes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// A fresh id for a connection, request or message.
pub fn new_id() -> String {
    let random = uuid::Uuid::new_v4();
    STANDARD.encode(&random.as_bytes()[..11])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_api_gateways() {
        let id = new_id();
        assert_eq!(id.len(), 16);
        assert!(id.ends_with('='));
        assert!(
            id[..15]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
        );
        assert_ne!(new_id(), new_id());
    }
}
