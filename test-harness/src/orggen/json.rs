//! The organisation as a real Backstage's `by-query` answers it: processed entities whose
//! `relations` carry both directions of every relation (dangling targets included, as
//! Backstage emits them), `spec` left as written. Duplicates appear once: the winning
//! definition.

use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};

use super::generate::{group_ref, user_ref, Org, Owner};
use super::reference::{effective_parents, Reference};
use super::yaml::GroupSides;
use super::OrgGenError;

fn relation(kind: &str, target: &str) -> Value {
    json!({"type": kind, "targetRef": target})
}

/// Who points at whom, in both directions, as Backstage's processors resolve it.
struct Relations {
    /// Per group: its effective parents.
    parents: Vec<Vec<usize>>,
    /// Per group: its effective children.
    children: Vec<Vec<usize>>,
    /// Per group: users that are direct members.
    members: Vec<Vec<usize>>,
    /// Per user: direct groups.
    direct: Vec<Vec<usize>>,
    /// Per group and per user: refs of the entities it owns.
    group_owns: Vec<Vec<String>>,
    user_owns: Vec<Vec<String>>,
}

impl Relations {
    fn of(org: &Org, reference: &Reference) -> Relations {
        let parents = effective_parents(org, org.adversarial.stray_copy_of);
        let mut children = vec![Vec::new(); org.groups.len()];
        for (child, list) in parents.iter().enumerate() {
            for parent in list {
                if let Some(kids) = children.get_mut(*parent) {
                    kids.push(child);
                }
            }
        }
        let direct: Vec<Vec<usize>> = (0..org.users.len())
            .map(|user| reference.direct_groups(org, user))
            .collect();
        let mut members = vec![Vec::new(); org.groups.len()];
        for (user, groups) in direct.iter().enumerate() {
            for group in groups {
                if let Some(list) = members.get_mut(*group) {
                    list.push(user);
                }
            }
        }
        let mut group_owns = vec![Vec::new(); org.groups.len()];
        let mut user_owns = vec![Vec::new(); org.users.len()];
        for entity in &org.owned {
            let owned_ref = entity_ref(entity.kind, &entity.name);
            let list = match entity.owner {
                Owner::Group(group, _) => group_owns.get_mut(group),
                Owner::User(user) => user_owns.get_mut(user),
                Owner::Missing(_) => None,
            };
            if let Some(list) = list {
                list.push(owned_ref);
            }
        }
        Relations {
            parents,
            children,
            members,
            direct,
            group_owns,
            user_owns,
        }
    }
}

fn entity_ref(kind: &str, name: &str) -> String {
    format!(
        "{}:default/{}",
        kind.to_ascii_lowercase(),
        name.to_lowercase()
    )
}

impl Org {
    /// Writes `{"items": [...], "totalItems": N, "pageInfo": {}}` to `path`, one processed
    /// entity per item: groups, users, owned entities, and the huge group when there is one.
    pub fn write_backstage_json(&self, path: &Path) -> Result<(), OrgGenError> {
        let io = |source| OrgGenError::Io {
            action: "write",
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::create(path).map_err(io)?;
        let mut out = std::io::BufWriter::new(file);
        let items = self.backstage_entities();
        out.write_all(b"{\"items\":[").map_err(io)?;
        for (position, item) in items.iter().enumerate() {
            if position > 0 {
                out.write_all(b",\n").map_err(io)?;
            }
            serde_json::to_writer(&mut out, item).map_err(|source| OrgGenError::Json {
                path: path.to_owned(),
                source,
            })?;
        }
        write!(out, "],\"totalItems\":{},\"pageInfo\":{{}}}}", items.len()).map_err(io)?;
        out.flush().map_err(io)
    }

    /// The processed entities, groups first, then users, then owned entities.
    pub fn backstage_entities(&self) -> Vec<Value> {
        let reference = Reference::build(self);
        let relations = Relations::of(self, &reference);
        let sides = GroupSides::of(self);
        let stray = self.adversarial.stray_copy_of;
        let mut items = Vec::with_capacity(self.groups.len() + self.users.len() + self.owned.len());
        for (index, group) in self.groups.iter().enumerate() {
            let mut listed: Vec<Value> = Vec::new();
            let pointing = |kind: &str, list: Option<&Vec<usize>>, to: &dyn Fn(usize) -> String| {
                list.into_iter()
                    .flatten()
                    .map(|target| relation(kind, &to(*target)))
                    .collect::<Vec<Value>>()
            };
            let group_name = |g: usize| self.group_ref(g).unwrap_or_default();
            let user_name = |u: usize| self.user_ref(u).unwrap_or_default();
            listed.extend(pointing(
                "childOf",
                relations.parents.get(index),
                &group_name,
            ));
            listed.extend(pointing(
                "parentOf",
                relations.children.get(index),
                &group_name,
            ));
            listed.extend(pointing(
                "hasMember",
                relations.members.get(index),
                &user_name,
            ));
            if index != stray {
                listed.extend(
                    group
                        .ghost_members
                        .iter()
                        .map(|ghost| relation("hasMember", &user_ref(ghost))),
                );
            }
            listed.extend(
                relations
                    .group_owns
                    .get(index)
                    .into_iter()
                    .flatten()
                    .map(|owned| relation("ownerOf", owned)),
            );
            let spec = if index == stray {
                json!({"type": "team", "children": []})
            } else {
                let (parent, children, members) = self.written_group(index, &sides);
                let mut spec = json!({"type": "team", "children": children, "members": members});
                if let (Some(parent), Some(map)) = (parent, spec.as_object_mut()) {
                    map.insert("parent".into(), Value::String(parent));
                }
                spec
            };
            items.push(json!({
                "apiVersion": "backstage.io/v1alpha1",
                "kind": "Group",
                "metadata": {"name": group.name, "namespace": "default"},
                "spec": spec,
                "relations": listed,
            }));
        }
        for (index, user) in self.users.iter().enumerate() {
            let mut listed: Vec<Value> = relations
                .direct
                .get(index)
                .into_iter()
                .flatten()
                .filter_map(|group| self.group_ref(*group))
                .map(|target| relation("memberOf", &target))
                .collect();
            listed.extend(
                user.ghost_groups
                    .iter()
                    .map(|ghost| relation("memberOf", &group_ref(ghost))),
            );
            listed.extend(
                relations
                    .user_owns
                    .get(index)
                    .into_iter()
                    .flatten()
                    .map(|owned| relation("ownerOf", owned)),
            );
            items.push(json!({
                "apiVersion": "backstage.io/v1alpha1",
                "kind": "User",
                "metadata": {"name": user.name, "namespace": "default"},
                "spec": {"profile": {"email": user.email}, "memberOf": self.written_member_of(index)},
                "relations": listed,
            }));
        }
        for entity in &self.owned {
            let owner = match &entity.owner {
                Owner::Group(group, _) => self.group_ref(*group).unwrap_or_default(),
                Owner::User(user) => self.user_ref(*user).unwrap_or_default(),
                Owner::Missing(name) => group_ref(name),
            };
            items.push(json!({
                "apiVersion": "backstage.io/v1alpha1",
                "kind": entity.kind,
                "metadata": {"name": entity.name, "namespace": "default",
                             "annotations": {entity.annotation: entity.value}},
                "spec": {"type": "service", "owner": self.written_owner(&entity.owner)},
                "relations": [relation("ownedBy", &owner)],
            }));
        }
        if self.adversarial.huge_group_members > 0 {
            let ghosts: Vec<Value> = (0..self.adversarial.huge_group_members)
                .map(|n| relation("hasMember", &format!("user:default/huge-ghost-{n}")))
                .collect();
            items.push(json!({
                "apiVersion": "backstage.io/v1alpha1",
                "kind": "Group",
                "metadata": {"name": "huge-group", "namespace": "default"},
                "spec": {"type": "team", "children": []},
                "relations": ghosts,
            }));
        }
        items
    }
}
