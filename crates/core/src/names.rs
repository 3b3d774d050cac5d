//! Names of clusters, groups, dataflows and event sets: one safe charset
//! that every layer checks the same way.

/// Longest group, dataflow or cluster name.
pub const MAX_NAME_LEN: usize = 64;

/// Checks a name of the safe charset shared by clusters, groups and dataflows:
/// letters, digits, `_`, `-` and `.`, starting with a letter or digit.
pub fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Err("a name may not be empty".to_owned());
    };
    if name.len() > MAX_NAME_LEN {
        return Err(format!("a name has at most {MAX_NAME_LEN} characters"));
    }
    if !first.is_ascii_alphanumeric() {
        return Err("a name starts with a letter or a digit".to_owned());
    }
    if let Some(bad) = chars.find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "`{bad}` is not allowed in a name (letters, digits, `_`, `-`, `.`)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_the_safe_charset_pass_and_others_say_why() {
        for good in ["default", "another_group", "web-1.prod", "A"] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        assert!(check_name("").unwrap_err().contains("empty"));
        assert!(check_name("-x").unwrap_err().contains("starts with"));
        assert!(check_name("a/b").unwrap_err().contains("`/`"));
        assert!(check_name(&"a".repeat(65)).unwrap_err().contains("64"));
    }
}
