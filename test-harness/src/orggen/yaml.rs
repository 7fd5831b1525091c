//! The organisation as Backstage descriptor files: multi-document YAML split over several
//! files, written the way people write catalogs (relations on either side, mixed case).

use std::fmt::Write as _;
use std::path::Path;

use super::generate::{capitalized, Group, Org, Owner, Side, Spelling, User};
use super::OrgGenError;

pub(crate) const GROUPS_PER_FILE: usize = 1_000;
pub(crate) const USERS_PER_FILE: usize = 5_000;
pub(crate) const ENTITIES_PER_FILE: usize = 5_000;

/// One file of the catalog directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CatalogFile {
    Groups(usize),
    Users(usize),
    Entities(usize),
    /// The second definitions: an identical user, an identical entity, a stray group copy.
    Duplicates,
    /// The huge group and its dangling members.
    HugeGroup,
}

impl CatalogFile {
    pub fn file_name(self) -> String {
        match self {
            CatalogFile::Groups(chunk) => format!("groups-{chunk:03}.yaml"),
            CatalogFile::Users(chunk) => format!("users-{chunk:03}.yaml"),
            CatalogFile::Entities(chunk) => format!("entities-{chunk:03}.yaml"),
            CatalogFile::Duplicates => "duplicates.yaml".to_owned(),
            CatalogFile::HugeGroup => "huge-group.yaml".to_owned(),
        }
    }
}

/// A JSON string literal, which YAML reads as a double-quoted scalar.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| String::from("\"\""))
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|item| quoted(item)).collect();
    format!("[{}]", quoted.join(", "))
}

/// Who lists whom on the group side, computed from the users and groups.
pub(crate) struct GroupSides {
    /// Per group: users whose membership the group writes down (`spec.members`).
    members: Vec<Vec<usize>>,
    /// Per group: children whose parent relation the group writes down (`spec.children`).
    children: Vec<Vec<usize>>,
}

impl GroupSides {
    pub(crate) fn of(org: &Org) -> GroupSides {
        let mut members = vec![Vec::new(); org.groups.len()];
        for (index, user) in org.users.iter().enumerate() {
            for membership in user.memberships.iter().filter(|m| m.side == Side::Other) {
                if let Some(list) = members.get_mut(membership.group) {
                    list.push(index);
                }
            }
        }
        let mut children = vec![Vec::new(); org.groups.len()];
        for (index, group) in org.groups.iter().enumerate() {
            if let (Some(parent), Side::Other) = (group.parent, group.parent_side) {
                if let Some(list) = children.get_mut(parent) {
                    list.push(index);
                }
            }
            if let Some(list) = children.get_mut(index) {
                list.extend(group.extra_children.iter().copied());
            }
        }
        GroupSides { members, children }
    }
}

impl Org {
    /// Every file of the catalog, in name order.
    pub fn files(&self) -> Vec<CatalogFile> {
        let chunks = |count: usize, per: usize| count.div_ceil(per);
        let mut files: Vec<CatalogFile> = (0..chunks(self.groups.len(), GROUPS_PER_FILE))
            .map(CatalogFile::Groups)
            .collect();
        files.extend((0..chunks(self.users.len(), USERS_PER_FILE)).map(CatalogFile::Users));
        files.extend((0..chunks(self.owned.len(), ENTITIES_PER_FILE)).map(CatalogFile::Entities));
        files.push(CatalogFile::Duplicates);
        if self.adversarial.huge_group_members > 0 {
            files.push(CatalogFile::HugeGroup);
        }
        files.sort();
        files
    }

    /// Writes every file into `dir` (created if missing).
    pub fn write_dir(&self, dir: &Path) -> Result<(), OrgGenError> {
        std::fs::create_dir_all(dir).map_err(|source| OrgGenError::Io {
            action: "create",
            path: dir.to_owned(),
            source,
        })?;
        let sides = GroupSides::of(self);
        for file in self.files() {
            let path = dir.join(file.file_name());
            std::fs::write(&path, self.render_with(file, &sides)).map_err(|source| {
                OrgGenError::Io {
                    action: "write",
                    path,
                    source,
                }
            })?;
        }
        Ok(())
    }

    /// The text of one file.
    pub fn render(&self, file: CatalogFile) -> String {
        self.render_with(file, &GroupSides::of(self))
    }

    pub(crate) fn render_with(&self, file: CatalogFile, sides: &GroupSides) -> String {
        let mut out = String::new();
        let range = |chunk: usize, per: usize, len: usize| {
            let start = chunk.saturating_mul(per).min(len);
            start..start.saturating_add(per).min(len)
        };
        match file {
            CatalogFile::Groups(chunk) => {
                for index in range(chunk, GROUPS_PER_FILE, self.groups.len()) {
                    self.write_group(&mut out, index, sides);
                }
            }
            CatalogFile::Users(chunk) => {
                for index in range(chunk, USERS_PER_FILE, self.users.len()) {
                    self.write_user(&mut out, index);
                }
            }
            CatalogFile::Entities(chunk) => {
                for index in range(chunk, ENTITIES_PER_FILE, self.owned.len()) {
                    self.write_entity(&mut out, index);
                }
            }
            CatalogFile::Duplicates => self.write_duplicates(&mut out),
            CatalogFile::HugeGroup => self.write_huge_group(&mut out),
        }
        out
    }

    /// How `group` is spelled in a reference.
    pub(crate) fn spelled_group(&self, group: usize, spelling: Spelling) -> String {
        let name = self.groups.get(group).map_or("", |g| g.name.as_str());
        match spelling {
            Spelling::Plain => name.to_owned(),
            Spelling::MixedCase => format!("Group:Default/{}", capitalized(name)),
        }
    }

    fn spelled_user(&self, user: usize, spelling: Spelling) -> String {
        let name = self.users.get(user).map_or("", |u| u.name.as_str());
        match spelling {
            Spelling::Plain => name.to_owned(),
            Spelling::MixedCase => format!("User:Default/{}", capitalized(name)),
        }
    }

    /// `spec.parent`, `spec.children` and `spec.members` of a group, as written.
    pub(crate) fn written_group(
        &self,
        index: usize,
        sides: &GroupSides,
    ) -> (Option<String>, Vec<String>, Vec<String>) {
        let Some(group) = self.groups.get(index) else {
            return (None, Vec::new(), Vec::new());
        };
        let parent = match (group.parent, group.parent_side) {
            (Some(parent), Side::Own) => Some(self.spelled_group(parent, group.parent_spelling)),
            _ => None,
        };
        let children: Vec<String> = sides
            .children
            .get(index)
            .into_iter()
            .flatten()
            .map(|child| {
                let spelling = self
                    .groups
                    .get(*child)
                    .map_or(Spelling::Plain, |c| c.parent_spelling);
                self.spelled_group(*child, spelling)
            })
            .collect();
        let mut members: Vec<String> = sides
            .members
            .get(index)
            .into_iter()
            .flatten()
            .map(|user| {
                let spelling = self
                    .users
                    .get(*user)
                    .and_then(|u| u.memberships.iter().find(|m| m.group == index))
                    .map_or(Spelling::Plain, |m| m.spelling);
                self.spelled_user(*user, spelling)
            })
            .collect();
        members.extend(group.ghost_members.iter().cloned());
        (parent, children, members)
    }

    fn write_group(&self, out: &mut String, index: usize, sides: &GroupSides) {
        let Some(group) = self.groups.get(index) else {
            return;
        };
        let (parent, children, members) = self.written_group(index, sides);
        write_group_document(out, group, parent.as_deref(), &children, &members);
    }

    /// `spec.memberOf` of a user, as written.
    pub(crate) fn written_member_of(&self, index: usize) -> Vec<String> {
        let Some(user) = self.users.get(index) else {
            return Vec::new();
        };
        let mut member_of: Vec<String> = user
            .memberships
            .iter()
            .filter(|m| m.side == Side::Own)
            .map(|m| self.spelled_group(m.group, m.spelling))
            .collect();
        member_of.extend(user.ghost_groups.iter().cloned());
        member_of
    }

    fn write_user(&self, out: &mut String, index: usize) {
        let Some(user) = self.users.get(index) else {
            return;
        };
        write_user_document(out, user, &self.written_member_of(index));
    }

    /// `spec.owner` of an owned entity, as written.
    pub(crate) fn written_owner(&self, owner: &Owner) -> String {
        match owner {
            Owner::Group(group, spelling) => self.spelled_group(*group, *spelling),
            Owner::User(user) => format!("user:{}", self.spelled_user(*user, Spelling::Plain)),
            Owner::Missing(name) => name.clone(),
        }
    }

    fn write_entity(&self, out: &mut String, index: usize) {
        let Some(entity) = self.owned.get(index) else {
            return;
        };
        let owner = self.written_owner(&entity.owner);
        let kind_specific = if entity.kind == "Component" {
            "  type: service\n  lifecycle: production\n"
        } else {
            "  type: database\n"
        };
        let _ = write!(
            out,
            "---\napiVersion: backstage.io/v1alpha1\nkind: {}\nmetadata:\n  name: {}\n  annotations:\n    {}: {}\nspec:\n{kind_specific}  owner: {}\n",
            entity.kind,
            quoted(&entity.name),
            quoted(entity.annotation),
            quoted(&entity.value),
            quoted(&owner)
        );
    }

    fn write_duplicates(&self, out: &mut String) {
        out.push_str("# Second definitions: an identical user, an identical entity, and a stray\n# parentless copy of a nested group.\n");
        self.write_user(out, self.adversarial.duplicated_user);
        self.write_entity(out, self.adversarial.duplicated_entity);
        if let Some(group) = self.groups.get(self.adversarial.stray_copy_of) {
            let _ = write!(
                out,
                "---\napiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: {}\nspec:\n  type: team\n  children: []\n",
                quoted(&group.name)
            );
        }
    }

    fn write_huge_group(&self, out: &mut String) {
        out.push_str("---\napiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: \"huge-group\"\nspec:\n  type: team\n  children: []\n  members:\n");
        for n in 0..self.adversarial.huge_group_members {
            let _ = writeln!(out, "    - \"huge-ghost-{n}\"");
        }
    }
}

fn write_group_document(
    out: &mut String,
    group: &Group,
    parent: Option<&str>,
    children: &[String],
    members: &[String],
) {
    let _ = write!(
        out,
        "---\napiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: {}\nspec:\n  type: team\n",
        quoted(&group.name)
    );
    if let Some(parent) = parent {
        let _ = writeln!(out, "  parent: {}", quoted(parent));
    }
    let _ = writeln!(out, "  children: {}", list(children));
    if !members.is_empty() {
        let _ = writeln!(out, "  members: {}", list(members));
    }
}

fn write_user_document(out: &mut String, user: &User, member_of: &[String]) {
    let _ = write!(
        out,
        "---\napiVersion: backstage.io/v1alpha1\nkind: User\nmetadata:\n  name: {}\nspec:\n  profile:\n    email: {}\n  memberOf: {}\n",
        quoted(&user.name),
        quoted(&user.email),
        list(member_of)
    );
}
