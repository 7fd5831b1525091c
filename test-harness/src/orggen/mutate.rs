//! Catalog changes for timing loops: one user out of or into a group, and the touched files
//! rewritten the way git-sync updates a checkout (a complete new file renamed over the old
//! one, so a reader sees either version, never half of one).

use std::path::Path;

use super::generate::{group_ref, Membership, Org, Side, Spelling};
use super::reference::Reference;
use super::yaml::{CatalogFile, GroupSides, GROUPS_PER_FILE, USERS_PER_FILE};
use super::OrgGenError;

impl Org {
    /// Takes `user` out of `group` (a direct membership, written on either side); the files
    /// to rewrite.
    pub fn move_out(&mut self, user: usize, group: usize) -> Result<Vec<CatalogFile>, OrgGenError> {
        self.check_group(group)?;
        let duplicated = self.adversarial.duplicated_user == user;
        let entry = self
            .users
            .get_mut(user)
            .ok_or(OrgGenError::UnknownUser { user })?;
        let position = entry
            .memberships
            .iter()
            .position(|m| m.group == group)
            .ok_or(OrgGenError::NotAMember { user, group })?;
        let removed = entry.memberships.remove(position);
        Ok(touched(user, group, removed.side, duplicated))
    }

    /// Puts `user` into `group`, written in the user's `spec.memberOf`; the files to rewrite.
    pub fn move_in(&mut self, user: usize, group: usize) -> Result<Vec<CatalogFile>, OrgGenError> {
        self.check_group(group)?;
        let duplicated = self.adversarial.duplicated_user == user;
        let entry = self
            .users
            .get_mut(user)
            .ok_or(OrgGenError::UnknownUser { user })?;
        if entry.memberships.iter().any(|m| m.group == group) {
            return Err(OrgGenError::AlreadyAMember { user, group });
        }
        entry.memberships.push(Membership {
            group,
            side: Side::Own,
            spelling: Spelling::Plain,
        });
        Ok(touched(user, group, Side::Own, duplicated))
    }

    /// Renders `files` and puts each in place in `dir` by writing a hidden temporary file
    /// (which the catalog reader skips) and renaming it over the old one.
    pub fn rewrite_files(&self, dir: &Path, files: &[CatalogFile]) -> Result<(), OrgGenError> {
        let sides = GroupSides::of(self);
        for file in files {
            let name = file.file_name();
            let path = dir.join(&name);
            let temporary = dir.join(format!(".{name}.tmp-{}", std::process::id()));
            let io = |action, path: &Path| {
                let path = path.to_owned();
                move |source| OrgGenError::Io {
                    action,
                    path,
                    source,
                }
            };
            std::fs::write(&temporary, self.render_with(*file, &sides))
                .map_err(io("write", &temporary))?;
            if let Err(error) = std::fs::rename(&temporary, &path) {
                // Best effort: leave no temporary file behind.
                let _ = std::fs::remove_file(&temporary);
                return Err(io("rename", &path)(error));
            }
        }
        Ok(())
    }

    /// The direct groups of `user` through which they are in any of `group_names` (bare names
    /// such as `data-eng`): taking the user out of all of them takes them out of those groups.
    pub fn memberships_granting(
        &self,
        reference: &Reference,
        user: usize,
        group_names: &[&str],
    ) -> Vec<usize> {
        let wanted: Vec<usize> = group_names
            .iter()
            .filter_map(|name| self.group_index(&group_ref(name)))
            .collect();
        reference
            .direct_groups(self, user)
            .into_iter()
            .filter(|group| {
                let closure = reference.group_closure(*group);
                wanted
                    .iter()
                    .any(|w| u32::try_from(*w).is_ok_and(|w| closure.contains(&w)))
            })
            .collect()
    }

    fn check_group(&self, group: usize) -> Result<(), OrgGenError> {
        if group < self.groups.len() {
            Ok(())
        } else {
            Err(OrgGenError::UnknownGroup { group })
        }
    }
}

/// The files a membership change rewrites: the side that writes it down, and the duplicate
/// file when the user is the one defined twice (both copies must stay identical).
fn touched(user: usize, group: usize, side: Side, duplicated: bool) -> Vec<CatalogFile> {
    let mut files = match side {
        Side::Own => vec![CatalogFile::Users(user / USERS_PER_FILE)],
        Side::Other => vec![CatalogFile::Groups(group / GROUPS_PER_FILE)],
    };
    if duplicated && side == Side::Own {
        files.push(CatalogFile::Duplicates);
    }
    files
}
